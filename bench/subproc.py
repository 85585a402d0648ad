"""Run one measurement in a fresh child process and read back its one line of JSON.

A fresh process per measurement keeps the adapters from disturbing each other (threads left
behind, a fragmented heap) and lets a hung adapter be killed instead of hanging the whole run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "Cell", "cell", "emit", "progress", "run_child", "stop_process"]

ROOT = Path(__file__).resolve().parent.parent

# One table cell: a figure, or why there is none ("timeout", "error: ...").
Cell = float | str


def run_child(module: str, args: list[str], timeout: float) -> dict[str, Any]:
    """Run ``python -m module *args``; its last stdout line is the JSON result."""
    try:
        proc = subprocess.run(  # bounded by timeout; the child is killed when it runs out
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        result = None
    if isinstance(result, dict):
        return result
    why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {why[:80]}"}


def progress(message: str) -> None:
    """A progress line on stderr, so a long run shows it is alive; stdout keeps the tables."""
    print(message, file=sys.stderr, flush=True)


def cell(result: dict[str, Any], key: str = "value") -> Cell:
    if "error" in result:
        return str(result["error"])
    return float(result[key])


def emit(result: dict[str, Any], *, hard_exit: bool) -> None:
    """Print the child's result; ``hard_exit`` skips joining threads a hung adapter left blocked."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    if hard_exit:
        sys.stderr.flush()
        os._exit(0)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop a server the benchmark started: SIGTERM, then SIGKILL past ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
