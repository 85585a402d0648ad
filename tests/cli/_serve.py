"""``crossgate serve`` in a child process, for the CLI tests.

The port is chosen here (a socket bound to port 0, then closed) because not every server
prints the port it bound when given 0. The child runs in its own process group, since
hypercorn, granian and gunicorn start worker processes: stopping sends SIGINT (Ctrl-C, which
every one of the six servers handles as a graceful stop) to the whole group, then SIGKILL
after a bounded wait. When the tests run under coverage, so does the child (its data file
joins the run's), so the command's code counts as tested.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import coverage

from tests.servers._servers import wait_for_a_get

__all__ = ["REPO_ROOT", "Serve", "crossgate_command", "free_port"]

REPO_ROOT = Path(__file__).resolve().parents[2]

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.1


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def crossgate_command(*arguments: str) -> list[str]:
    """``python -m crossgate ARGUMENTS``, under ``coverage run`` when this run measures it."""
    if coverage.Coverage.current() is not None:
        # The repository's settings and data file, whatever directory the child runs in.
        rcfile = f"--rcfile={REPO_ROOT / 'pyproject.toml'}"
        prefix = [sys.executable, "-m", "coverage", "run", rcfile, "--parallel-mode", "-m"]
    else:
        prefix = [sys.executable, "-m"]
    return [*prefix, "crossgate", *arguments]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["COVERAGE_FILE"] = str(REPO_ROOT / ".coverage")
    return env


class Serve:
    """``crossgate serve APP --server SERVER --port PORT ...`` running, and what it printed."""

    def __init__(self, log_path: Path, *arguments: str, cwd: Path = REPO_ROOT) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.arguments = arguments
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                crossgate_command(
                    "serve", *arguments, "--host", "127.0.0.1", "--port", str(self.port)
                ),
                cwd=cwd,
                env=environment(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def describe(self) -> str:
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return f"crossgate serve {' '.join(self.arguments)} ({state}); log:\n{self.log()}"

    def wait_until_ready(self) -> None:
        """Wait until a GET to ``/`` gets any answer; fail with the log after a bound."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        wait_for_a_get(self.base_url, self.process, deadline, self.describe)

    def wait_for_log(self, needle: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while needle not in self.log():
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL)
        return True

    def stop(self) -> None:
        """SIGINT to the process group, then SIGKILL if it has not exited in time."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)
        # Workers the server started may outlive an early-exiting parent: the group goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
