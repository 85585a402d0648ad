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
import contextvars
import logging
import sys
import threading
import weakref
from asyncio import events
from collections.abc import Callable, Collection
from typing import Any, TypeVar, TypeVarTuple

from crossgate.exceptions import CrossgateError

__all__ = [
    "InlineLoop",
    "LoopThread",
    "ThreadLoops",
    "cancel_tasks",
    "finish_loop",
    "new_inline_loop",
    "quiet_turn",
    "release",
]

_log = logging.getLogger("crossgate")

T = TypeVar("T")
_Ts = TypeVarTuple("_Ts")

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
    if asyncio._get_running_loop() is not None:
        raise CrossgateError(
            "ASGIToWSGI in inline mode was called from a thread that is running an event loop; "
            "it cannot run the app's loop there. Use mode='shared', or call the ASGI app "
            "directly from async code"
        )


_new_object = object.__new__

# The slots of asyncio's Handle that `InlineLoop.call_soon` fills itself (CPython 3.11 to 3.13).
# Any other layout, and call_soon makes its handles the usual way.
_HANDLE_SLOTS = frozenset(
    {"_callback", "_args", "_cancelled", "_loop", "_source_traceback", "_repr", "_context"}
)
_FILL_HANDLES = set(events.Handle.__slots__) - {"__weakref__"} == _HANDLE_SLOTS


class InlineLoop(asyncio.SelectorEventLoop):
    """asyncio's default event loop for one WSGI thread, made for `quiet_turn`.

    It is the loop ``asyncio.new_event_loop()`` makes with the default policy on Unix, with
    two differences that only make it cheaper per request:

    * ``call_soon`` (which every new task calls for its first step) makes its `asyncio.Handle`
      without the two extra Python calls of asyncio's own path; in debug mode it is asyncio's
      own path, which records where each callback was scheduled.
    * the thread it belongs to and its async-generator hooks are kept, for `quiet_turn` to
      install without looking them up on every request.

    Everything else (``run_forever``, the selector, timers, executors) is asyncio's own.
    """

    def __init__(self) -> None:
        super().__init__()
        base: Any = self  # asyncio's private parts
        self.owner = threading.get_ident()
        # What run_forever installs as the thread's async-generator hooks (PEP 525).
        self.asyncgen_hooks = (base._asyncgen_firstiter_hook, base._asyncgen_finalizer_hook)

    def call_soon(
        self,
        callback: Callable[[*_Ts], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        """asyncio's ``call_soon``: run ``callback(*args)`` in the loop's next iteration.

        Raises:
            RuntimeError: the loop is closed.
        """
        base: Any = self  # asyncio's private parts
        if base._debug or not _FILL_HANDLES:
            return super().call_soon(callback, *args, context=context)
        if base._closed:
            raise RuntimeError("Event loop is closed")
        # events.Handle.__init__, without its get_debug() call (debug mode took the path
        # above): the handle asyncio's own call_soon would queue.
        handle: Any = _new_object(events.Handle)
        handle._callback = callback
        handle._args = args
        handle._cancelled = False
        handle._loop = self
        handle._source_traceback = None
        handle._repr = None
        handle._context = contextvars.copy_context() if context is None else context
        base._ready.append(handle)
        result: asyncio.Handle = handle
        return result


def new_inline_loop() -> asyncio.AbstractEventLoop:
    """A new loop for an inline-mode thread: an `InlineLoop` where asyncio would make its
    default loop, else the loop the application's event loop policy makes (uvloop's, say).

    Asked of asyncio itself, which knows the policy in force: the event loop policy API is
    deprecated from Python 3.14 on. That loop is closed again when it is the default one.
    """
    loop = asyncio.new_event_loop()
    if type(loop) is not asyncio.SelectorEventLoop:
        return loop
    loop.close()
    return InlineLoop()


def quiet_turn(loop: asyncio.AbstractEventLoop) -> bool:
    """Run the callbacks ready on the stopped ``loop``, when that is all an iteration would do.

    One iteration of asyncio's own loop (``BaseEventLoop._run_once``) polls the selector for
    I/O, moves the timers that are due to the ready queue, then runs the callbacks that were
    ready when it began. When the loop has no timer and watches no file descriptor but its own
    self-pipe, the poll and the timers have nothing to do, and running the ready callbacks here
    does exactly what the iteration would, without the cost of ``run_forever``'s set-up and of
    an ``epoll_wait`` system call. That is the usual state of an inline-mode loop when a request
    starts (its only ready callback is the new task's first step), and on the per-request path
    of a gunicorn sync worker these costs are a large share of what the adapter adds.

    The running loop, the loop's thread and its async-generator hooks are set as
    ``run_forever`` sets them, so the app sees a running loop, ``asyncio.current_task()``
    works and an async generator it abandons is finalised on this loop.

    Returns False, having done nothing, when the loop is not an `InlineLoop` (uvloop's, another
    policy's), is in debug mode, is stopping, has timers, signal handlers or other file
    descriptors, or nothing is ready, or when this thread already runs a loop: the caller then
    runs the loop with ``run_forever``, which handles all of those.
    """
    if type(loop) is not InlineLoop:
        return False
    # The loop's private state, read directly: each accessor would be a Python call on the
    # per-request path.
    base: Any = loop
    ready = base._ready
    if (
        not ready
        or base._scheduled
        or base._stopping
        or base._debug
        or base._signal_handlers
        # The self-pipe only (the selectors module's own record of what it watches).
        or len(base._selector._fd_to_key) != 1
        or events._get_running_loop() is not None
    ):
        return False
    hooks = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(*loop.asyncgen_hooks)
    base._thread_id = loop.owner
    events._set_running_loop(loop)
    try:
        # Only the callbacks ready now, as one iteration would: those they schedule wait for
        # the next turn.
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                handle._run()
    finally:
        events._set_running_loop(None)
        base._thread_id = None
        sys.set_asyncgen_hooks(*hooks)
    return True


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
        loop = new_inline_loop()
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
