"""The event loops `ASGIToWSGI` runs ASGI apps on.

* `ThreadLoops` (inline mode): one loop per WSGI thread, created lazily. The WSGI thread runs
  the loop itself, only while it serves a request, so a request costs no cross-thread hand-off.
* `LoopThread` (shared mode): one loop in one daemon thread for the whole process, for threaded
  servers whose app keeps loop-bound resources (a database pool) every request must share.

Both belong to one process: the adapter makes new ones when the PID changes (a server that
forks after importing the app, `gunicorn --preload`, must not reuse its parent's loops, whose
threads do not exist in the child). `finish_loop` and `cancel_tasks` stop them cleanly, so no
"Task was destroyed but it is pending" is ever logged.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Collection
from typing import Any, TypeVar

from crossgate.exceptions import CrossgateError

__all__ = [
    "LoopThread",
    "ThreadLoops",
    "cancel_tasks",
    "finish_loop",
    "release",
]

_log = logging.getLogger("crossgate")

T = TypeVar("T")

# Tasks that ignored cancellation past every timeout. Referenced here so they are never garbage
# collected: a pending task's destructor would log "Task was destroyed but it is pending".
_STUCK: list[asyncio.Task[Any]] = []


async def cancel_tasks(timeout: float, keep: Collection[asyncio.Task[Any]] = ()) -> None:
    """Cancel every task of the running loop but the caller and ``keep``; wait for them.

    Waits at most ``timeout`` seconds; a task still running after that ignored its
    cancellation: it is logged and kept referenced (see `_STUCK`).
    """
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current and t not in keep]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    if pending:
        _log.warning(
            "%d ASGI task(s) still running %.1f s after being cancelled: %r",
            len(pending),
            timeout,
            pending,
        )
        _STUCK.extend(pending)


async def _wind_down(loop: asyncio.AbstractEventLoop, timeout: float) -> None:
    await cancel_tasks(timeout)
    await loop.shutdown_asyncgens()
    # Not loop.shutdown_default_executor(): on Python 3.11 it joins the executor's threads
    # without a bound, so one blocked asyncio.to_thread call would hang the shutdown.
    # loop.close() shuts the executor down without waiting; idle threads exit at once.


def finish_loop(loop: asyncio.AbstractEventLoop, timeout: float) -> None:
    """Cancel what is left on a loop that is not running, wait (bounded), and close it."""
    try:
        loop.run_until_complete(_wind_down(loop, timeout))
    finally:
        loop.close()


def _no_running_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise CrossgateError(
        "ASGIToWSGI in inline mode was called from a thread that is running an event loop; "
        "it cannot run the app's loop there. Use mode='shared', or call the ASGI app "
        "directly from async code"
    )


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
        if loop is None or loop.is_closed():
            loop = self._create()
        return loop

    def _create(self) -> asyncio.AbstractEventLoop:
        _no_running_loop()
        # asyncio's own loop for the policy in force (uvloop's, when the application chose it).
        loop = asyncio.new_event_loop()
        self._local.loop = loop
        with self._lock:
            dead = [entry for entry in self._loops if not entry[0].is_alive()]
            self._loops = [entry for entry in self._loops if entry[0].is_alive()]
            self._loops.append((threading.current_thread(), loop))
        # A thread that ended leaves its loop behind: nothing can run it any more, so its
        # leftovers (a background task cut short by the thread's end) are cancelled here.
        for _, old in dead:
            finish_loop(old, 1.0)
        return loop

    def all(self) -> list[asyncio.AbstractEventLoop]:
        """Every loop made so far and not yet closed."""
        with self._lock:
            return [loop for _, loop in self._loops if not loop.is_closed()]

    def close(self, timeout: float) -> None:
        """Finish and close every loop (see `finish_loop`).

        A loop that is serving a request (its thread is running it) cannot be closed from
        here: its thread closes it when that request ends (`release`).
        """
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
    """A thread is done with ``loop`` for this request: close it if its adapter shut down.

    Without this, a loop whose adapter shut down during a request would never be closed (its
    `ThreadLoops` is gone), and asyncio warns "unclosed event loop" when it is collected.
    """
    if loop in _CLOSE_WHEN_DONE and not loop.is_running():
        _CLOSE_WHEN_DONE.discard(loop)
        finish_loop(loop, timeout)


# Shared mode's loop thread is crossgate's one loop-thread class, shared with async_to_sync.
from crossgate.concurrency._runtime import LoopThread  # noqa: E402
