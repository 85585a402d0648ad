"""Threads and event loops: where sync and async code meet.

The "Sync and async" page of the documentation explains the rules.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, ParamSpec, TypeVar, overload

from crossgate.concurrency._asgiref import copy_back
from crossgate.concurrency._async_iter import AsyncToSyncIterator, async_to_sync_iter
from crossgate.concurrency._calls import Call, OrphanedCalls, check_cancelled, orphaned_calls
from crossgate.concurrency._errors import ConcurrencyError, DeadlockError
from crossgate.concurrency._loops import AsyncSingleThreadContext, run_sync, server_loop
from crossgate.concurrency._loops import set_server_loop as set_server_loop  # the adapters' seam
from crossgate.concurrency._pool import SHARED_POOL, describe
from crossgate.concurrency._sensitive import ThreadSensitiveContext, submit
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


def _wraps(wrapper: W, wrapped: Callable[..., Any]) -> W:
    """`functools.update_wrapper`, keeping a bound method's ``__self__`` as asgiref does."""
    functools.update_wrapper(wrapper, wrapped)
    if hasattr(wrapped, "__self__"):
        wrapper.__dict__["__self__"] = wrapped.__self__
    return wrapper


def _is_async(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - a callable object's async __call__
    )


@overload
def sync_to_async(
    func: Callable[P, R],
    /,
    *,
    thread_sensitive: bool = True,
    executor: Executor | None = None,
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def sync_to_async(
    func: None = None,
    /,
    *,
    thread_sensitive: bool = True,
    executor: Executor | None = None,
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

    Use it as a call, ``await sync_to_async(func)(*args)``, or as a decorator, bare or with
    options; it keeps ``func``'s signature, name, docstring and a bound method's ``__self__``.
    Each call runs with a copy of the caller's contextvars whose changes come back to the
    caller. A cancelled caller gets `asyncio.CancelledError` at once: a call not yet started
    never starts, a running one runs on, orphaned (see `check_cancelled`).

    Args:
        thread_sensitive: ``True`` (the default, as asgiref's) runs the call on the thread
            Django expects for thread-bound code (database connections). ``False`` runs calls
            in parallel on a bounded pool of threads named ``crossgate-sync-N``.
        executor: a `concurrent.futures.Executor` to run the calls on instead of the pool;
            only with ``thread_sensitive=False``, as in asgiref.

    Raises:
        TypeError: ``func`` is async or not callable; or an ``executor`` was given without
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
        if _is_async(fn):
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
    func: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    timeout: float | None = None,
) -> Callable[P, R] | Callable[[Callable[P, Awaitable[R]]], Callable[P, R]]:
    """Turn the coroutine function ``func`` into a sync function that blocks for its result.

    Use it as a call, ``async_to_sync(func)(*args)``, or as a decorator, bare or with options;
    it keeps ``func``'s signature, name, docstring and a bound method's ``__self__``. The
    coroutine runs on an existing event loop, never a new one per call: the ASGI server's in a
    ``WSGIToASGI`` worker thread, the caller's in a `sync_to_async` thread, else one persistent
    ``crossgate-loop`` thread per process. While it waits, the calling thread runs the
    thread-sensitive calls the coroutine makes. Contextvars go along and their changes come back.

    Args:
        timeout: seconds to wait before cancelling the coroutine and raising `TimeoutError`;
            ``None`` waits as long as it takes.

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
