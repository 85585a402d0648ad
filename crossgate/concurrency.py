"""Threads and event loops: where sync and async code meet.

For now this module holds the seam `crossgate.WSGIToASGI` leaves for code running in its
worker threads: `server_loop` tells such code which event loop the ASGI server runs, so
async code called from a WSGI view can be run on that loop rather than on a new one.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

__all__ = ["server_loop"]

_server_loop: ContextVar[asyncio.AbstractEventLoop | None] = ContextVar(
    "crossgate_server_loop", default=None
)


def server_loop() -> asyncio.AbstractEventLoop | None:
    """Return the ASGI server's event loop when called from a ``WSGIToASGI`` worker thread.

    Returns ``None`` anywhere else, and once that loop is closed. The loop is running in
    another thread: schedule work on it with `asyncio.run_coroutine_threadsafe`, never
    by calling its methods directly.
    """
    loop = _server_loop.get()
    if loop is None or loop.is_closed():
        return None
    return loop


def set_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Record ``loop`` as the server loop for the current context (used by the adapters)."""
    _server_loop.set(loop)
