"""Real servers for the GZip streaming test: uvicorn serving `GZip`, gunicorn serving `WSGIGZip`.

The apps stream a few events and, between two, wait on a gate that the test releases from a
second connection once it has decoded the event: a chunk held back anywhere (the middleware, or
the server) leaves the gate shut, and after `GATE_TIMEOUT` the app says so in the body. No
duration is asserted.

Servers listen on 127.0.0.1 port 0 (the port is read from the log), every wait is bounded, and
the process is stopped by its PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from crossgate.middleware.gzip import GZip, WSGIGZip
from crossgate.types import ASGIReceive, ASGISend, StartResponse, WSGIEnvironment

__all__ = ["EVENTS", "GATE_TIMEOUT", "TIMED_OUT", "Server", "asgi_app", "wsgi_app"]

EVENTS = 3
GATE_TIMEOUT = 10.0
TIMED_OUT = b"gate timed out: the client never saw the previous event\n"
REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


def _event(n: int) -> bytes:
    return f"data: event {n}\n\n".encode()


# --- ASGI under uvicorn (one event loop: asyncio gates) ------------------------------------------

_async_gates: dict[str, asyncio.Event] = {}


def _async_gate(key: str) -> asyncio.Event:
    return _async_gates.setdefault(key, asyncio.Event())


async def _stream_asgi(
    scope: MutableMapping[str, Any], receive: ASGIReceive, send: ASGISend
) -> None:
    if scope["type"] != "http":
        return  # lifespan: nothing to start
    query = parse_qs(scope["query_string"].decode())
    token = query.get("token", [""])[0]
    if scope["path"] == "/release":
        _async_gate(f"{token}/{query['n'][0]}").set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"released"})
        return
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for n in range(EVENTS):
        await send({"type": "http.response.body", "body": _event(n), "more_body": True})
        try:
            await asyncio.wait_for(_async_gate(f"{token}/{n}").wait(), GATE_TIMEOUT)
        except TimeoutError:
            await send({"type": "http.response.body", "body": TIMED_OUT})
            return
    await send({"type": "http.response.body", "body": b""})


asgi_app = GZip(_stream_asgi)


# --- WSGI under gunicorn's threaded worker (threading gates) ----------------------------------

_lock = threading.Lock()
_thread_gates: dict[str, threading.Event] = {}


def _thread_gate(key: str) -> threading.Event:
    with _lock:
        return _thread_gates.setdefault(key, threading.Event())


def _stream_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    token = query.get("token", [""])[0]
    if environ["PATH_INFO"] == "/release":
        _thread_gate(f"{token}/{query['n'][0]}").set()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"released"]
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return _events(token)


def _events(token: str) -> Iterator[bytes]:
    for n in range(EVENTS):
        yield _event(n)
        if not _thread_gate(f"{token}/{n}").wait(GATE_TIMEOUT):
            yield TIMED_OUT
            return


wsgi_app = WSGIGZip(_stream_wsgi)


# --- the server processes -----------------------------------------------------------------------

_COMMANDS = {
    "uvicorn": (
        [
            *(sys.executable, "-m", "uvicorn", "tests.middleware._e_servers:asgi_app"),
            *("--host", "127.0.0.1", "--port", "0", "--lifespan", "off"),
        ],
        re.compile(r"running on http://127\.0\.0\.1:(\d+)", re.IGNORECASE),
    ),
    "gunicorn": (
        [
            *(sys.executable, "-m", "gunicorn", "tests.middleware._e_servers:wsgi_app"),
            *("--bind", "127.0.0.1:0", "--workers", "1", "--worker-class", "gthread"),
            *("--threads", "4", "--graceful-timeout", "2"),
        ],
        re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)"),
    ),
}


class Server:
    """One server in a child process; its output goes to ``log_path``."""

    def __init__(self, name: str, log_path: Path) -> None:
        command, self._listening = _COMMANDS[name]
        self.name = name
        self.log_path = log_path
        self.port = 0
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_until_ready(self) -> None:
        """Wait for the listening line, then for an answer; fail with the log otherwise."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.port:
            found = self._listening.search(self.log())
            if found:
                self.port = int(found.group(1))
            elif self.process.poll() is not None or time.monotonic() >= deadline:
                pytest.fail(f"{self.name} did not start listening; log:\n{self.log()}")
            else:
                time.sleep(0.05)
        while True:
            try:
                httpx.get(f"{self.url}/release?token=ready&n=0", timeout=2.0)
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() >= deadline:
                    pytest.fail(f"{self.name} did not answer; log:\n{self.log()}")
                time.sleep(0.05)
            else:
                return

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it has not exited within `STOP_TIMEOUT`."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
