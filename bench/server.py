"""Hello world under uvicorn (one worker), loaded with wrk, for each contender.

Everything stays on 127.0.0.1. A server is started as ``python -m <server>`` (or its own script)
so that its PID is the server's own and it can be stopped by that PID, whatever happens;
`start` and `wrk` serve the other sections too (``bench.deploy``).
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.subproc import ROOT, stop_process

__all__ = ["WrkResult", "free_port", "parse_wrk", "run", "start", "wrk"]

HOST = "127.0.0.1"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
LOG_DIR = ROOT / "bench" / "results"

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    requests_per_s: float
    p99_ms: float
    non_2xx_3xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non_2xx_3xx + self.socket_errors

    @property
    def good_per_s(self) -> float:
        """Requests per second that got a 2xx or 3xx answer."""
        if not self.requests:
            return 0.0
        return self.requests_per_s * (self.requests - self.non_2xx_3xx) / self.requests


def parse_wrk(text: str) -> WrkResult:
    """Read the figures out of ``wrk --latency`` output (wrk 4)."""
    total = re.search(r"^\s*(\d+) requests in ", text, re.MULTILINE)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99 = re.search(r"^\s*99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.MULTILINE)
    if total is None or rate is None or p99 is None:
        raise ValueError("wrk printed no Requests/sec or 99% latency line")
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=int(total.group(1)),
        requests_per_s=float(rate.group(1)),
        p99_ms=float(p99.group(1)) * _UNITS[p99.group(2)],
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(proc: subprocess.Popen[bytes], port: int, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with status {proc.returncode}")
        connection = http.client.HTTPConnection(HOST, port, timeout=1.0)
        try:
            connection.request("GET", "/")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.1)
    raise RuntimeError(f"{name} was not answering after {READY_TIMEOUT:.0f} s")


def start(
    name: str, command: list[str], port: int, log_path: Path, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """Start server ``name`` (``command``, listening on ``port``, run in ``cwd``), its output to
    ``log_path``.

    Returns once ``GET /`` answers 200. Raises `RuntimeError` if the server exits or is not
    answering within ``READY_TIMEOUT`` seconds, after stopping it.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, port, name)
    except RuntimeError:
        stop_process(proc, STOP_TIMEOUT)
        raise
    return proc


def wrk(port: int, seconds: float, threads: int, connections: int) -> str:
    duration = f"{max(1, round(seconds))}s"
    url = f"http://{HOST}:{port}/"
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}", "--latency", url]
    proc = subprocess.run(  # bounded: wrk stops itself, and the timeout backs it up
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr.strip()[:80]}")
    return proc.stdout


def run(
    name: str, seconds: float, warmup: float, threads: int = 2, connections: int = 50
) -> WrkResult | str:
    """Serve ``bench.server_apps:<name>`` and load it; a string says why there is no figure."""
    if shutil.which("wrk") is None:
        return "no wrk"
    port = free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", f"bench.server_apps:{name}"),
        *("--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning"),
    ]
    try:
        proc = start("uvicorn", command, port, LOG_DIR / f"uvicorn-{name}.log")
    except RuntimeError as exc:
        return f"error: {exc}"[:60]
    try:
        if warmup > 0:
            wrk(port, warmup, threads, connections)
        return parse_wrk(wrk(port, seconds, threads, connections))
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
        return f"error: {exc}"[:60]
    finally:
        stop_process(proc, STOP_TIMEOUT)
