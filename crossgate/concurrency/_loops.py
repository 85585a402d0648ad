"""Which event loop `async_to_sync` uses, the persistent loop thread, and the call itself.

In order: the loop awaiting the crossgate `sync_to_async` call this thread runs; the ASGI
server's loop in a `WSGIToASGI` worker thread (`server_loop`); the loop awaiting the asgiref
``sync_to_async`` call this thread runs (a sync Django view under ``ASGIHandler``); otherwise
one persistent loop thread per process, ``crossgate-loop``, started on first use (again in a
forked child: the PID is checked) and stopped at exit. Never a new loop per call: asgiref's
``async_to_sync`` makes a thread and a loop for each call from a plain thread (asgiref #370).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import os
import threading
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from crossgate.concurrency import _asgiref
from crossgate.concurrency._asgiref import adopt_locals, copy_back
from crossgate.concurrency._errors import ConcurrencyError
from crossgate.concurrency._pool import Waiter, describe, local, waiter_var
from crossgate.concurrency._runtime import LoopThread, after_fork_in_child, at_exit
from crossgate.concurrency._sensitive import default_pool

__all__ = [
    "POLL",
    "AsyncSingleThreadContext",
    "loop_running",
    "pick_loop",
    "portal_loop",
    "run_sync",
    "server_loop",
    "set_server_loop",
    "stop_portal",
]

# How often a waiting caller checks that the loop it waits on still exists.
POLL = 1.0

# The server's loop, with the PID of the process that recorded it: a child forked from a
# worker thread keeps this context, and the parent's loop in it still looks running there,
# with no thread to run it (asgiref checks its own caller loop the same way, asgiref #194).
_server_loop: ContextVar[tuple[asyncio.AbstractEventLoop, int] | None] = ContextVar(
    "crossgate_server_loop", default=None
)


def server_loop() -> asyncio.AbstractEventLoop | None:
    """Return the ASGI server's event loop when called from a ``WSGIToASGI`` worker thread.

    Returns ``None`` anywhere else, once that loop is closed, and in a process forked from
    that thread (the loop is the parent's). The loop is running in another thread: schedule
    work on it with `asyncio.run_coroutine_threadsafe` (or call `async_to_sync`, which does),
    never by calling its methods directly.
    """
    recorded = _server_loop.get()
    if recorded is None:
        return None
    loop, pid = recorded
    if pid != os.getpid() or loop.is_closed():
        return None
    return loop


def set_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Record ``loop`` as the server loop for the current context (used by the adapters)."""
    _server_loop.set((loop, os.getpid()))


_portal: LoopThread | None = None
_portal_lock = threading.Lock()


def portal_loop() -> asyncio.AbstractEventLoop:
    """The persistent loop, started on first use and again after a fork."""
    global _portal
    with _portal_lock:
        portal = _portal
        if portal is None or portal.pid != os.getpid() or portal.loop.is_closed():
            portal = _portal = LoopThread("crossgate-loop")
        return portal.loop


def stop_portal() -> None:
    """Stop the persistent loop thread, if this process started one (at exit)."""
    global _portal
    with _portal_lock:
        portal, _portal = _portal, None
    if portal is not None and portal.pid == os.getpid():
        portal.stop()


def loop_running() -> bool:
    """Whether this thread runs an event loop (which a blocking wait would freeze)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def pick_loop() -> asyncio.AbstractEventLoop:
    """The loop `async_to_sync` runs its coroutine on, from this thread (module docstring)."""
    job = local.job
    for loop in (None if job is None else job.loop, server_loop(), _asgiref.caller_loop()):
        if loop is not None and loop.is_running() and not loop.is_closed():
            return loop
    return portal_loop()


class AsyncSingleThreadContext(contextlib.AbstractContextManager["AsyncSingleThreadContext"]):
    """Run the `async_to_sync` calls made in this block on one thread: asgiref's name for it.

    ``with AsyncSingleThreadContext(): ...`` -- in asgiref, `async_to_sync` called from a plain
    thread makes a new thread and event loop per call, and this context makes the calls in the
    block share one thread instead (still a new loop per call, in asgiref 3.13). crossgate's
    `async_to_sync` never makes a thread or a loop per call: from the same place, every call
    runs on the same thread *and the same loop* (the persistent ``crossgate-loop``, the ASGI
    server's loop in a ``WSGIToASGI`` worker, or the loop awaiting the `sync_to_async` call
    this thread runs), so an event-loop-bound client made in one call still works in the next.
    Entering this context therefore changes nothing: it exists so that code written for
    asgiref, which enters it, imports and runs unchanged. Re-entrant, like asgiref's; it
    raises nothing of its own and lets exceptions from the block through.
    """

    def __exit__(self, *exc_info: object) -> None:
        return None


class _Box:
    """The outcome of one `async_to_sync` call, written on the loop, read by the caller."""

    __slots__ = ("done", "ok", "skip", "task", "value")

    # Set by `_start` on the loop; a cancel is scheduled on the same loop after it, and a
    # loop runs its callbacks in order, so `cancel` always finds it.
    task: asyncio.Task[None]

    def __init__(self) -> None:
        self.skip: frozenset[contextvars.ContextVar[Any]] = frozenset()
        self.done = False
        self.ok = False
        self.value: Any = None

    def cancel(self) -> None:
        self.task.cancel()


async def _main(
    func: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    waiter: Waiter,
    box: _Box,
) -> None:
    # The caller's context moved to the loop's thread: so do its asgiref Locals, as in
    # asgiref's own async_to_sync (before enter_waiter sets asgiref's executor Local here).
    adopt_locals()
    token = waiter_var.set(waiter)
    box.skip = _asgiref.enter_waiter(waiter, default_pool)
    try:
        awaitable = func(*args, **kwargs)
        if not inspect.isawaitable(awaitable):
            raise TypeError(
                f"async_to_sync needs a callable that returns an awaitable; {describe(func)} "
                f"returned {type(awaitable).__name__}"
            )
        box.value = await awaitable
        box.ok = True
    except GeneratorExit:
        # The loop was closed with this task pending, and the garbage collector closes it.
        box.value = ConcurrencyError(
            f"the event loop running {describe(func)} was closed before it finished"
        )
        raise
    except BaseException as exc:
        # Everything, KeyboardInterrupt and CancelledError included, belongs to the caller.
        box.value = exc
    finally:
        # Closed by the garbage collector, in another context.
        with contextlib.suppress(ValueError):
            waiter_var.reset(token)
        box.done = True
        waiter.wake()


def _start(
    loop: asyncio.AbstractEventLoop,
    coro: Any,
    ctx: contextvars.Context,
    box: _Box,
) -> None:
    # The task runs in ``ctx`` itself (not a copy), so the caller can read its changes back.
    box.task = loop.create_task(coro, context=ctx)


def run_sync(
    func: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float | None,
) -> Any:
    """Run ``func(*args, **kwargs)`` on the loop `pick_loop` chooses; block for the outcome.

    Raises:
        ConcurrencyError: this thread runs an event loop; or that loop closed first.
        TimeoutError: ``timeout`` seconds passed; the coroutine was cancelled.
        BaseException: whatever the coroutine raised, with its traceback.
    """
    if loop_running():
        name = describe(func)
        raise ConcurrencyError(
            f"async_to_sync({name}) was called from a thread that runs an event loop, which "
            f"it would block until the call ends: await {name}(...) directly instead"
        )
    waiter = Waiter()
    box = _Box()
    ctx = contextvars.copy_context()
    loop = pick_loop()
    coro = _main(func, args, kwargs, waiter, box)
    try:
        loop.call_soon_threadsafe(_start, loop, coro, ctx, box)
    except RuntimeError:
        # Closed since pick_loop looked at it (the server is shutting down).
        loop = portal_loop()
        loop.call_soon_threadsafe(_start, loop, coro, ctx, box)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not box.done:
            wait = POLL if deadline is None else min(POLL, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError(
                    f"{describe(func)} did not finish within {timeout} s; it was cancelled"
                )
            if not waiter.wait(wait) and loop.is_closed() and not box.done:
                raise ConcurrencyError(
                    f"the event loop running {describe(func)} closed before it finished"
                )
    except BaseException:
        # A timeout, or KeyboardInterrupt in this thread: the caller gave up, so the
        # coroutine is cancelled rather than left running for nobody (unless the loop is
        # closed, and the task gone with it).
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(box.cancel)
        raise
    finally:
        waiter.close()
    copy_back(ctx, box.skip)
    if box.ok:
        return box.value
    error: BaseException = box.value
    try:
        raise error
    finally:
        del error, box


at_exit(stop_portal)


@after_fork_in_child
def _forget_portal() -> None:  # pragma: no cover - runs in forked children only
    global _portal, _portal_lock
    _portal = None
    _portal_lock = threading.Lock()
