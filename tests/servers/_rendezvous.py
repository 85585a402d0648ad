"""Server-side meeting points the Flask and Django test apps share.

The server tests must never assert a duration: a slow CI machine would make them flaky, and a
fast one would hide a serialised adapter. Instead, each property is proven by a rendezvous that
can only succeed if the adapter behaves:

* ``BARRIER``: 8 requests pass only if 8 worker threads run the app at the same time.
* ``Gates``: a streamed response holds back its tail until the client, having received the
  head, releases it from another connection; a buffering adapter would deadlock until the
  gate's timeout, and the body would say so.
* ``Progress``: an upload reports how far the app has read, so the client can see the app
  reading before the client has finished sending.

Everything here lives in the server process, one instance per process; tests tell their
requests apart with a random token.
"""

from __future__ import annotations

import sys
import threading

__all__ = [
    "BARRIER",
    "BARRIER_PARTIES",
    "GATES",
    "GATE_TIMEOUT",
    "PROGRESS",
    "UPLOAD_CHUNK",
    "Gates",
    "Progress",
    "server_log",
]

BARRIER_PARTIES = 8
# Long enough for 8 requests to reach a server on a loaded machine, short enough that a broken
# barrier (a serialising adapter) answers well inside the per-test timeout.
BARRIER = threading.Barrier(BARRIER_PARTIES, timeout=10)

# The apps read uploads in pieces of this size, never the whole body at once.
UPLOAD_CHUNK = 64 * 1024

# How long a gated response waits for its release before giving up and saying so in the body.
GATE_TIMEOUT = 10.0


def server_log(line: str) -> None:
    """Write one line to the server's stderr, which the test fixture captures to a file.

    Flushed at once: the test polls the file for the line while the server keeps running.
    """
    print(line, file=sys.stderr, flush=True)


class Gates:
    """Named one-shot events; ``release`` may come before or after ``wait``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}

    def _event(self, token: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(token, threading.Event())

    def release(self, token: str) -> None:
        self._event(token).set()

    def wait(self, token: str) -> bool:
        """True when released within ``GATE_TIMEOUT`` seconds."""
        released = self._event(token).wait(GATE_TIMEOUT)
        with self._lock:
            self._events.pop(token, None)
        return released


class Progress:
    """How many request-body bytes each upload (by token) has read so far."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read: dict[str, int] = {}

    def add(self, token: str, count: int) -> None:
        with self._lock:
            self._read[token] = self._read.get(token, 0) + count

    def read(self, token: str) -> int:
        with self._lock:
            return self._read.get(token, 0)


GATES = Gates()
PROGRESS = Progress()
