"""Real servers (uvicorn, hypercorn, daphne, granian; gunicorn, waitress and granian for WSGI)
in child processes, for the server tests.

Each server listens on 127.0.0.1 port 0 where it reports the port the kernel picked in its
startup line; choosing a port in the test and passing it on would race with any other process
binding ports between the two steps. granian and waitress print the port they were given, so
for them the test picks a free one (`free_port`) and accepts that small race. The server's
stdout and stderr go to a file the tests can read, so they can assert on what happened
server-side. The process is always stopped by its PID, with a bounded wait at every step.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

__all__ = [
    "GUNICORN_LISTENING",
    "SERVERS",
    "WSGI_LISTENING",
    "ServerProcess",
    "free_port",
    "granian_command",
    "gunicorn_command",
    "running",
    "server_command",
    "waitress_command",
]

SERVERS = ("uvicorn", "hypercorn", "daphne", "granian")

REPO_ROOT = Path(__file__).resolve().parents[2]

# Every wait is bounded: a server that cannot start or stop fails the test with its log.
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
POLL_INTERVAL = 0.05

# uvicorn: "Uvicorn running on http://127.0.0.1:PORT"; hypercorn: "Running on http://...";
# daphne: "Listening on TCP address 127.0.0.1:PORT" (each the port actually bound); granian:
# "Listening at: http://127.0.0.1:PORT" (the port it was given).
_LISTENING = re.compile(
    r"(?:running on http://|Listening on TCP address |Listening at: http://)127\.0\.0\.1:(\d+)",
    re.IGNORECASE,
)
# For the WSGI servers: granian --interface wsgi as above, waitress "Serving on http://...".
WSGI_LISTENING = re.compile(r"(?:Listening at: |Serving on )http://127\.0\.0\.1:(\d+)")


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick for port 0, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# gunicorn: "Listening at: http://127.0.0.1:PORT (PID)", with the port the socket is bound to.
GUNICORN_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


def server_command(server: str, app: str) -> list[str]:
    """The command line that serves the ASGI application ``app`` ("module:attr") on 127.0.0.1."""
    if server == "uvicorn":
        # uvicorn's lifespan default ("auto") swallows a failing startup; "on" makes it fatal.
        # The graceful-shutdown bound keeps SIGTERM from waiting on a stuck connection.
        return [
            *(sys.executable, "-m", "uvicorn", app),
            *("--host", "127.0.0.1", "--port", "0"),
            *("--lifespan", "on", "--timeout-graceful-shutdown", "2"),
        ]
    if server == "hypercorn":
        # --workers 0 serves from this very process: the default (1) spawns a child worker
        # that stopping the parent by PID could leave behind.
        return [
            *(sys.executable, "-m", "hypercorn", app),
            *("--bind", "127.0.0.1:0", "--workers", "0", "--graceful-timeout", "2"),
            *("--access-logfile", "-"),
        ]
    if server == "daphne":
        # daphne has no lifespan protocol and no graceful-shutdown option; it stops on SIGTERM.
        return [
            *(sys.executable, "-m", "daphne", app),
            *("--bind", "127.0.0.1", "--port", "0", "--access-log", "-"),
        ]
    if server == "granian":
        return granian_command(app, "asgi")
    raise ValueError(f"unknown server {server!r}; expected one of {SERVERS}")


def granian_command(app: str, interface: str) -> list[str]:
    """granian serving ``app`` with ``--interface asgi`` or ``wsgi``: one worker process, which
    granian stops itself when its main process gets SIGTERM."""
    return [
        *(sys.executable, "-m", "granian", app, "--interface", interface),
        *("--host", "127.0.0.1", "--port", str(free_port()), "--workers", "1"),
        *("--workers-kill-timeout", "2"),
    ]


def waitress_command(app: str) -> list[str]:
    """waitress serving the WSGI application ``app`` (its own command, ``waitress-serve``)."""
    return [
        *(sys.executable, "-m", "waitress", "--host", "127.0.0.1", "--port", str(free_port())),
        app,
    ]


def gunicorn_command(
    app: str,
    *,
    worker_class: str = "sync",
    workers: int = 1,
    threads: int = 1,
    preload: bool = False,
    config: str | None = None,
) -> list[str]:
    """The command line that serves the WSGI application ``app`` with gunicorn on 127.0.0.1.

    The short graceful timeout keeps SIGTERM from waiting long on a stuck request; both logs go
    to stderr, which the fixture captures.
    """
    command = [
        *(sys.executable, "-m", "gunicorn", app),
        *("--bind", "127.0.0.1:0", "--worker-class", worker_class, "--workers", str(workers)),
        *("--graceful-timeout", "2", "--timeout", "30"),
        *("--access-logfile", "-", "--error-logfile", "-"),
        # gunicorn 24+ opens a control socket under ~/.gunicorn: one path for every instance.
        "--no-control-socket",
    ]
    if worker_class == "gthread":
        command += ["--threads", str(threads)]
    if preload:
        command.append("--preload")
    if config is not None:
        command += ["--config", config]
    return command


class ServerProcess:
    """A server running in a child process, and the log it writes.

    ``command`` and ``listening`` default to the ASGI server ``server`` serving ``app`` and its
    startup line; gunicorn tests pass `gunicorn_command` and `GUNICORN_LISTENING`.
    """

    def __init__(
        self,
        server: str,
        app: str,
        log_path: Path,
        *,
        command: list[str] | None = None,
        listening: re.Pattern[str] = _LISTENING,
    ) -> None:
        self.server = server
        self.app = app
        self.log_path = log_path
        self.port = 0
        self._listening = listening
        env = dict(os.environ)
        # The child imports tests.servers.* from the repository root, and prints without
        # buffering so the log file is current when a test polls it.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        with log_path.open("wb") as log_file:
            # The child keeps its own copy of the file descriptor; ours closes right away.
            self.process = subprocess.Popen(
                command if command is not None else server_command(server, app),
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 5.0) -> bool:
        """Poll the log until ``needle`` appears; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if needle in self.log():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL)

    def describe(self) -> str:
        """The server's name, state and log, for assertion messages."""
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return f"{self.server} serving {self.app} ({state}); log:\n{self.log()}"

    def wait_until_ready(self) -> None:
        """Wait for the startup line, then for a GET to be answered; fail with the log."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.port:
            if self.process.poll() is not None or time.monotonic() >= deadline:
                pytest.fail(f"the server did not start listening: {self.describe()}")
            found = self._listening.search(self.log())
            if found:
                self.port = int(found.group(1))
            else:
                time.sleep(POLL_INTERVAL)
        # The startup line may precede the accept loop by a moment.
        wait_for_a_get(self.base_url, self.process, deadline, self.describe)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the server has not exited within ``STOP_TIMEOUT``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


@contextmanager
def running(process: ServerProcess) -> Iterator[ServerProcess]:
    """Wait until ``process`` serves, give it to the caller, and always stop it after."""
    try:
        process.wait_until_ready()
        yield process
    finally:
        process.stop()


def wait_for_a_get(
    base_url: str, process: subprocess.Popen[bytes], deadline: float, describe: Callable[[], str]
) -> None:
    """Return once a GET to ``/`` gets any answer, which shows the server is serving (whether
    the app answers well is for the tests to judge); fail with ``describe()`` if ``process``
    exits or ``deadline`` (a `time.monotonic` value) passes first."""
    while True:
        try:
            httpx.get(base_url + "/", timeout=2.0)
        except httpx.TransportError:
            pass
        else:
            return
        if process.poll() is not None or time.monotonic() >= deadline:
            pytest.fail(f"no answer to a GET at {base_url}: {describe()}")
        time.sleep(POLL_INTERVAL)
