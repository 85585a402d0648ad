"""The event loops `ASGIToWSGI` runs ASGI apps on: `ThreadLoops` (inline mode, one per WSGI
thread) and `LoopThread` (shared mode, one loop thread per process). Both belong to one process
(a forked child makes its own); `finish_loop` and `cancel_tasks` stop them cleanly, so no "Task
was destroyed but it is pending" is ever logged.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from typing import TypeVar

# Shared mode's loop thread and the way every loop ends are the one runtime's (async_to_sync's).
from crossgate.concurrency._runtime import LoopThread, cancel_tasks, finish_loop
from crossgate.exceptions import CrossgateError

__all__ = ["LoopThread", "ThreadLoops", "cancel_tasks", "finish_loop", "release"]

_log = logging.getLogger("crossgate")

T = TypeVar("T")


class ThreadLoops:
    """A lazily created event loop per thread, for inline mode; all of them for one process."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._loops: list[tuple[threading.Thread, asyncio.AbstractEventLoop]] = []

    def get(self) -> asyncio.AbstractEventLoop:
        """The calling thread's loop, created on first use.

        Raises:
            CrossgateError: the thread is already running an event loop.
        """
        loop: asyncio.AbstractEventLoop | None = getattr(self._local, "loop", None)
        if loop is not None and not loop.is_closed():
            return loop
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise CrossgateError(
                "ASGIToWSGI in inline mode was called from a thread that is running an event "
                "loop; it cannot run the app's loop there. Use mode='shared', or call the ASGI "
                "app directly from async code"
            )
        # The loop of the policy in force (uvloop's, when the application chose it).
        loop = asyncio.new_event_loop()
        self._local.loop = loop
        with self._lock:
            dead = [entry for entry in self._loops if not entry[0].is_alive()]
            self._loops = [entry for entry in self._loops if entry[0].is_alive()]
            self._loops.append((threading.current_thread(), loop))
        # A thread that ended left its loop behind: its leftovers are cancelled here.
        for _, old in dead:
            finish_loop(old, 1.0)
        return loop

    def all(self) -> list[asyncio.AbstractEventLoop]:
        with self._lock:
            return [loop for _, loop in self._loops if not loop.is_closed()]

    def close(self, timeout: float) -> None:
        """Finish and close every loop (`finish_loop`); one serving a request is closed by its
        thread when that request ends (`release`)."""
        with self._lock:
            loops, self._loops = self._loops, []
        for thread, loop in loops:
            if loop.is_running():
                _log.warning(
                    "the event loop of thread %s is serving a request: closing it when that "
                    "request ends",
                    thread.name,
                )
                _CLOSE_WHEN_DONE.add(loop)
                continue
            finish_loop(loop, timeout)


# Loops `ThreadLoops.close` found serving a request; their own thread closes them after it.
_CLOSE_WHEN_DONE: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def release(loop: asyncio.AbstractEventLoop, timeout: float) -> None:
    """A thread is done with ``loop`` for this request: close it if its adapter shut down
    meanwhile (nothing else would, and asyncio warns "unclosed event loop")."""
    if loop in _CLOSE_WHEN_DONE and not loop.is_running():
        _CLOSE_WHEN_DONE.discard(loop)
        finish_loop(loop, timeout)
