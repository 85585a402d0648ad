"""Meet asgiref where Django looks: its thread-sensitive executors and its caller's loop.

Django calls asgiref directly (``ASGIHandler`` enters asgiref's ``ThreadSensitiveContext`` per
request; the async ORM uses asgiref's ``sync_to_async(thread_sensitive=True)``). For crossgate's
thread-sensitive calls to share Django's database connection, they must run on the thread
asgiref would pick, and asgiref's calls inside crossgate's `async_to_sync` must come back to the
waiting thread as they would under asgiref's own. Everything here uses asgiref's class
attributes (``SyncToAsync.thread_sensitive_context``, ``SyncToAsync.context_to_thread_executor``,
``AsyncToSync.executors``, ``AsyncToSync.loop_thread_executors``, ``SyncToAsync.threadlocal``)
and only when the application already imported asgiref: crossgate never imports it. Three
private attributes are read, where asgiref offers nothing public, each with a safe answer when
it is missing: whether a ``ThreadSensitiveContext`` exited, and the thread of an executor
(`foreign_owner`).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextvars import ContextVar
from types import ModuleType
from typing import Any, ParamSpec, TypeVar

from crossgate.concurrency._errors import ConcurrencyError
from crossgate.concurrency._pool import Pool, Waiter, local

__all__ = [
    "PoolExecutor",
    "WaiterExecutor",
    "caller_loop",
    "context_executor",
    "current_executor",
    "enter_waiter",
    "foreign_owner",
    "loop_executor",
]

P = ParamSpec("P")
R = TypeVar("R")

_MISSING = object()


def _asgiref() -> ModuleType | None:
    return sys.modules.get("asgiref.sync")


def current_executor() -> Executor | None:
    """asgiref's executor for the sync thread waiting in an outer asgiref `async_to_sync`."""
    sync = _asgiref()
    if sync is None:
        return None
    executor: Executor | None = getattr(sync.AsyncToSync.executors, "current", None)
    return executor


def context_executor() -> Executor | None:
    """The thread of the asgiref ``ThreadSensitiveContext`` in force (Django's request thread).

    Created the way asgiref creates it when this call comes first, and stored where asgiref
    looks, so Django's own thread-sensitive calls in the request use the same thread.

    Raises:
        ConcurrencyError: the context exited and this task outlived it.
    """
    sync = _asgiref()
    if sync is None:
        return None
    context = sync.SyncToAsync.thread_sensitive_context.get(None)
    if context is None:
        return None
    if getattr(context, "_exited", False):
        raise ConcurrencyError(
            "asgiref's ThreadSensitiveContext has exited: tasks created inside it must finish "
            "before it exits"
        )
    executors = sync.SyncToAsync.context_to_thread_executor
    executor: Executor | None = executors.get(context)
    if executor is None:
        executor = executors[context] = PoolExecutor(Pool("crossgate-asgiref-context-", 1))
    return executor


def loop_executor(loop: asyncio.AbstractEventLoop) -> Executor | None:
    """The waiting thread of the asgiref `async_to_sync` that created ``loop``, if any."""
    sync = _asgiref()
    if sync is None:
        return None
    executor: Executor | None = sync.AsyncToSync.loop_thread_executors.get(loop)
    return executor


def caller_loop() -> asyncio.AbstractEventLoop | None:
    """The loop awaiting the asgiref `sync_to_async` call this thread runs (as asgiref finds it)."""
    sync = _asgiref()
    if sync is None:
        return None
    threadlocal = sync.SyncToAsync.threadlocal
    # asgiref's own fork check (asgiref #194): a loop from the parent process is not running.
    if getattr(threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    loop: asyncio.AbstractEventLoop | None = getattr(threadlocal, "main_event_loop", None)
    return loop


def foreign_owner(executor: Executor) -> threading.Thread | None:
    """The one thread of an asgiref thread-sensitive executor, for the deadlock check.

    asgiref's (a ``CurrentThreadExecutor``; a context's ``ThreadPoolExecutor(max_workers=1)``)
    name it only in private attributes, read here; ``None`` (no check) when they are missing.
    """
    if isinstance(executor, PoolExecutor):
        return executor.pool.owner()
    thread = getattr(executor, "_work_thread", None)
    if isinstance(thread, threading.Thread):
        return thread
    threads = getattr(executor, "_threads", None)
    if isinstance(executor, ThreadPoolExecutor) and threads:
        only: threading.Thread = next(iter(threads))
        return only
    return None


class _FnJob:
    """An asgiref job (``fn(*args)`` for a `concurrent.futures.Future`) on a crossgate thread."""

    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        self.future, self.fn, self.args, self.kwargs = future, fn, args, kwargs

    def dropped_by(self, future: Future[Any]) -> None:
        if future.cancelled():
            self.future.cancel()

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        # Not a crossgate call: check_cancelled() and async_to_sync must not see an outer one.
        previous, local.job = local.job, None
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)
        finally:
            local.job = previous


class PoolExecutor(Executor):
    """A crossgate `Pool` as an `Executor`, for asgiref (and anything that takes one).

    Raises:
        ConcurrencyError: (from ``submit``, a `RuntimeError` as the executor API says) the
            pool was shut down.
    """

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        future: Future[R] = Future()
        self.pool.submit(_FnJob(future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let the threads end once the jobs already queued are done; never waits for them."""
        self.pool.shutdown()


class WaiterExecutor(Executor):
    """A crossgate `Waiter` as the executor asgiref submits thread-sensitive work to."""

    def __init__(self, waiter: Waiter, fallback: Callable[[], Pool]) -> None:
        self.waiter = waiter
        self._fallback = fallback

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        future: Future[R] = Future()
        job = _FnJob(future, fn, args, kwargs)
        if not self.waiter.offer(job):
            # The waiting thread moved on (a task outlived its async_to_sync). asgiref raises
            # "CurrentThreadExecutor already quit or is broken" here (asgiref #491, #526);
            # the default thread-sensitive thread is the next best place.
            self._fallback().submit(job)
        return future


def enter_waiter(waiter: Waiter, fallback: Callable[[], Pool]) -> frozenset[ContextVar[Any]]:
    """Inside `async_to_sync`'s task: send asgiref's thread-sensitive calls to ``waiter``.

    asgiref looks first at ``AsyncToSync.executors.current``, the executor of the innermost
    sync thread waiting in an ``async_to_sync``: it is set to ``waiter`` here, as asgiref's
    own ``async_to_sync`` sets it. It must be set even when an outer value is not visible on
    this thread: asgiref re-homes its storage on every ``sync_to_async`` it runs, which would
    make a stale outer executor visible again, and work sent there would wait for a thread
    that is waiting for us. Tasks started here inherit the setting; once the call is over,
    `WaiterExecutor` sends their work to the fallback thread.

    Returns the context variables behind that setting: the caller must not copy their new
    values back into its own context (asgiref's ``async_to_sync`` restores them likewise).
    """
    sync = _asgiref()
    if sync is None:
        return frozenset()
    before = contextvars.copy_context()
    sync.AsyncToSync.executors.current = WaiterExecutor(waiter, fallback)
    after = contextvars.copy_context()
    return frozenset(var for var, value in after.items() if before.get(var, _MISSING) is not value)
