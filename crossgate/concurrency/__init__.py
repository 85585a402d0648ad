"""Threads and event loops: where sync and async code meet (docs: "Sync and async")."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor, Future
from typing import Any, NamedTuple, ParamSpec, TypeVar, overload

from crossgate.concurrency._asgiref import ThreadSensitiveContext, adopt_locals, copy_back, submit
from crossgate.concurrency._loops import (
    AsyncSingleThreadContext,
    AsyncToSyncIterator,
    async_to_sync_iter,
    run_sync,
    server_loop,
)
from crossgate.concurrency._loops import set_server_loop as set_server_loop  # the adapters' seam
from crossgate.concurrency._pool import (
    SHARED_POOL,
    ConcurrencyError,
    DeadlockError,
    describe,
    inbox_for,
    local,
)
from crossgate.concurrency._runtime import after_fork_in_child
from crossgate.concurrency._sync_iter import SyncToAsyncIterator, sync_to_async_iter

__all__ = [
    "AsyncSingleThreadContext",
    "AsyncToSyncIterator",
    "ConcurrencyError",
    "DeadlockError",
    "OrphanedCalls",
    "SyncToAsyncIterator",
    "ThreadSensitiveContext",
    "async_to_sync",
    "async_to_sync_iter",
    "check_cancelled",
    "orphaned_calls",
    "server_loop",
    "sync_to_async",
    "sync_to_async_iter",
]

P = ParamSpec("P")
R = TypeVar("R")
W = TypeVar("W", bound=Callable[..., Any])

_log = logging.getLogger("crossgate.concurrency")

_QUEUED, _RUNNING, _ORPHANED, _DONE, _DROPPED = range(5)
_STATE_LOCK = threading.Lock()


class OrphanedCalls(NamedTuple):
    """Sync calls a cancelled caller left running: ``running`` now, ``total`` since start."""

    running: int
    total: int


_orphans = {"running": 0, "total": 0}


def orphaned_calls() -> OrphanedCalls:
    """How many sync calls a cancelled caller left running: now, and in total (also logged)."""
    with _STATE_LOCK:
        return OrphanedCalls(_orphans["running"], _orphans["total"])


def check_cancelled() -> None:
    """In sync code run by `sync_to_async`, raise `asyncio.CancelledError` if its caller gave up.

    Raises:
        asyncio.CancelledError: the awaiting caller was cancelled.
    """
    job = local.job
    if job is not None and job.cancel_requested:
        raise asyncio.CancelledError("the caller awaiting this sync call was cancelled")


class Call:
    """One `sync_to_async` call: run on a worker thread, settled on the caller's loop."""

    __slots__ = ("args", "ctx", "fn", "future", "kwargs", "loop", "state", "thread_name")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        ctx: contextvars.Context,
    ) -> None:
        self.loop, self.fn, self.args, self.kwargs, self.ctx = loop, fn, args, kwargs, ctx
        self.future: asyncio.Future[Any] = loop.create_future()
        self.state = _QUEUED

    @property
    def cancel_requested(self) -> bool:
        return self.state == _ORPHANED

    def run(self) -> None:
        with _STATE_LOCK:
            if self.state != _QUEUED:
                return  # the caller was cancelled before a thread was free: never start
            self.state = _RUNNING
            self.thread_name = threading.current_thread().name
        release = None
        if local.release is not None and local.release[0] is self:
            release, local.release = local.release[1], None
        previous, local.job = local.job, self
        try:
            self.ctx.run(adopt_locals)
            value = self.ctx.run(self.fn, *self.args, **self.kwargs)
            ok = True
        except StopIteration as exc:  # asyncio futures refuse it (PEP 479): the caller would hang
            value, ok = RuntimeError(f"{describe(self.fn)} raised StopIteration"), False
            value.__cause__ = exc
        except BaseException as exc:
            value, ok = exc, False
        finally:
            local.job = previous
        with _STATE_LOCK:
            orphaned = self.state == _ORPHANED
            self.state = _DONE
            if orphaned:
                _orphans["running"] -= 1
        if release is not None:
            release()
        if not orphaned:
            inbox_for(self.loop).post(self.future, ok, value)
        elif ok:
            _log.info("orphaned call %s finished; its result was dropped", describe(self.fn))
        elif isinstance(value, asyncio.CancelledError):
            _log.info("orphaned call %s stopped early at check_cancelled()", describe(self.fn))
        else:
            _log.warning(
                "orphaned call %s failed; nobody awaited it", describe(self.fn), exc_info=value
            )

    def abandon(self) -> None:
        with _STATE_LOCK:
            if self.state == _QUEUED:
                self.state = _DROPPED
                return
            if self.state != _RUNNING:
                return
            self.state = _ORPHANED
            _orphans["running"] += 1
            _orphans["total"] += 1
            running = _orphans["running"]
        _log.warning(
            "the task awaiting %s was cancelled while it ran on thread %r; the call runs on "
            "to its end, orphaned (orphaned calls running: %d); call "
            "crossgate.check_cancelled() in it to stop early",
            describe(self.fn),
            self.thread_name,
            running,
        )

    def dropped_by(self, future: Future[Any]) -> None:
        if not future.cancelled():
            return
        with _STATE_LOCK:
            if self.state != _QUEUED:
                return
            self.state = _DROPPED
        error = ConcurrencyError(f"the executor cancelled {describe(self.fn)} before it ran")
        inbox_for(self.loop).post(self.future, False, error)


@after_fork_in_child
def _reset_state() -> None:  # pragma: no cover - runs in forked children only
    global _STATE_LOCK
    _STATE_LOCK = threading.Lock()  # one held at the fork would stay locked in the child
    _orphans["running"] = 0


def _wraps(wrapper: W, wrapped: Callable[..., Any]) -> W:
    """`functools.update_wrapper`, keeping a bound method's ``__self__`` as asgiref does."""
    functools.update_wrapper(wrapper, wrapped)
    if hasattr(wrapped, "__self__"):
        wrapper.__dict__["__self__"] = wrapped.__self__
    return wrapper


@overload
def sync_to_async(
    func: Callable[P, R], /, *, thread_sensitive: bool = True, executor: Executor | None = None
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def sync_to_async(
    func: None = None, /, *, thread_sensitive: bool = True, executor: Executor | None = None
) -> Callable[[Callable[P, R]], Callable[P, Coroutine[Any, Any, R]]]: ...


def sync_to_async(
    func: Callable[P, R] | None = None,
    /,
    *,
    thread_sensitive: bool = True,
    executor: Executor | None = None,
) -> (
    Callable[P, Coroutine[Any, Any, R]]
    | Callable[[Callable[P, R]], Callable[P, Coroutine[Any, Any, R]]]
):
    """Turn the sync callable ``func`` into a coroutine function that runs it in a thread.

    A call or a decorator, bare or with options. A cancelled caller gets `CancelledError` at once.

    Args:
        thread_sensitive: run on the thread Django expects (as asgiref), not on a shared pool.
        executor: runs the calls instead of the pool; only with ``thread_sensitive=False``.

    Raises:
        TypeError: ``func`` is async or not callable, or ``executor`` came without
            ``thread_sensitive=False``.
        DeadlockError: (when called) the thread-sensitive thread is the calling thread.
        ConcurrencyError: (when called) the thread-sensitive context has exited.
    """
    if thread_sensitive and executor is not None:
        raise TypeError(
            "sync_to_async runs a thread-sensitive call (the default) on the thread Django "
            "expects, not on an executor: pass thread_sensitive=False with executor="
        )

    def decorate(fn: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
        if not callable(fn):
            raise TypeError(f"sync_to_async needs a callable, not {type(fn).__name__}")
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - a callable object's async __call__
        ):
            raise TypeError(
                f"sync_to_async needs a sync callable; {describe(fn)} is async: await it directly"
            )

        async def run_in_thread(*args: P.args, **kwargs: P.kwargs) -> R:
            ctx = contextvars.copy_context()
            call = Call(asyncio.get_running_loop(), fn, args, kwargs, ctx)
            if thread_sensitive or executor is not None:
                submit(call, call.loop, fn, thread_sensitive, executor)
            else:
                SHARED_POOL.put(call)  # the common case, without a dispatch
            try:
                result: R = await call.future
            except asyncio.CancelledError:  # never swallowed nor traded for a result (asgiref #567)
                call.abandon()
                raise
            except BaseException:
                copy_back(ctx)
                raise
            copy_back(ctx)
            return result

        return _wraps(run_in_thread, fn)

    return decorate if func is None else decorate(func)


@overload
def async_to_sync(
    func: Callable[P, Awaitable[R]], /, *, timeout: float | None = None
) -> Callable[P, R]: ...


@overload
def async_to_sync(
    func: None = None, /, *, timeout: float | None = None
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, R]]: ...


def async_to_sync(
    func: Callable[P, Awaitable[R]] | None = None, /, *, timeout: float | None = None
) -> Callable[P, R] | Callable[[Callable[P, Awaitable[R]]], Callable[P, R]]:
    """Turn the coroutine function ``func`` into a sync function that blocks for its result.

    A call or a decorator; the coroutine runs on an existing loop, never a new one per call.

    Args:
        timeout: seconds before the coroutine is cancelled and `TimeoutError` raised.

    Raises:
        ValueError: ``timeout`` is not positive.
        TypeError: ``func`` is not callable; (when called) it returned no awaitable.
        ConcurrencyError: (when called) this thread runs an event loop: ``await`` instead.
        TimeoutError: (when called) ``timeout`` passed.
    """
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, R]:
        if not callable(fn):
            raise TypeError(f"async_to_sync needs a callable, not {type(fn).__name__}")

        def run_on_loop(*args: P.args, **kwargs: P.kwargs) -> R:
            return run_sync(fn, args, kwargs, timeout)

        return _wraps(run_on_loop, fn)

    return decorate if func is None else decorate(func)
