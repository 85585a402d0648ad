"""Where a thread-sensitive call runs: asgiref's order (docs/concurrency.md), never a deadlock."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Executor
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Self

from crossgate.concurrency import _asgiref
from crossgate.concurrency._errors import ConcurrencyError, DeadlockError
from crossgate.concurrency._pool import (
    SHARED_POOL,
    Job,
    Pool,
    Waiter,
    describe,
    submit_to,
    waiter_var,
)
from crossgate.concurrency._runtime import after_fork_in_child

_PREFIX = "crossgate-sensitive-"
# Context threads, busy or idle; past the bound a new context shares the least-used thread.
MAX_CONTEXT_THREADS = 32

_lock = threading.Lock()
_default: Pool | None = None
_idle: list[Pool] = []
_users: dict[Pool, int] = {}  # leased threads -> how many contexts use each


def default_pool() -> Pool:
    global _default
    with _lock:
        if _default is None:
            _default = Pool(_PREFIX, 1)
        return _default


def _lease() -> Pool:
    with _lock:
        if len(_users) >= MAX_CONTEXT_THREADS:
            pool = min(_users, key=_users.__getitem__)
        elif _idle:
            pool = _idle.pop()
        else:
            pool = Pool(_PREFIX, 1)  # its thread starts with its first call
        _users[pool] = _users.get(pool, 0) + 1
        return pool


def _release(pool: Pool) -> None:
    with _lock:
        _users[pool] -= 1
        if not _users[pool]:
            del _users[pool]
            _idle.append(pool)


class ThreadSensitiveContext:
    """Give the thread-sensitive calls made inside this block a thread of their own.

    ``async with ThreadSensitiveContext(): ...`` -- every `sync_to_async(...,
    thread_sensitive=True)` call in the block, and in tasks it starts, runs on one thread,
    leased on first use and given back on exit, as Django's ``ASGIHandler`` does per request
    with asgiref's context of the same name (inside a Django request that one wins). Nested
    contexts reuse the outermost.

    Raises:
        ConcurrencyError: (from a thread-sensitive call) a task outlived the context.
    """

    def __init__(self) -> None:
        self._token: Token[ThreadSensitiveContext | None] | None = None
        self._pool: Pool | None = None
        self._exited = False

    async def __aenter__(self) -> Self:
        if _context_var.get() is None:
            self._token = _context_var.set(self)
            self._exited = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is None:
            return
        _context_var.reset(self._token)
        self._token = None
        self._exited = True
        pool, self._pool = self._pool, None
        if pool is not None:
            _release(pool)

    def pool(self) -> Pool:
        """This context's thread (leased on first use)."""
        if self._exited:
            raise ConcurrencyError(
                "a thread-sensitive call was made after its ThreadSensitiveContext exited: "
                "tasks started inside the context must finish before it exits"
            )
        if self._pool is None:
            self._pool = _lease()
        return self._pool


_context_var: ContextVar[ThreadSensitiveContext | None] = ContextVar(
    "crossgate_thread_sensitive_context", default=None
)


def _check(owner: threading.Thread | None, what: object) -> None:
    if owner is not None and owner is threading.current_thread():
        raise DeadlockError(
            f"the thread-sensitive call {describe(what)} would have to run on thread "
            f"{owner.name!r}, which is the thread awaiting it (it runs the event loop that "
            "waits for the call), so the call could never start. Call it without sync_to_async "
            "there, or run the async code with async_to_sync instead of a new event loop on "
            "that thread",
            thread_name=owner.name,
        )


def submit(
    job: Job,
    loop: asyncio.AbstractEventLoop,
    what: object,
    thread_sensitive: bool,
    executor: Executor | None,
) -> None:
    """Run ``job`` (calling ``what``, awaited on ``loop``) where `sync_to_async` would.

    Raises:
        DeadlockError: that thread is the current one.
        ConcurrencyError: the thread-sensitive context this task inherited has exited.
    """
    if not thread_sensitive:
        if executor is None:
            SHARED_POOL.put(job)
        else:
            submit_to(executor, job)
        return
    # 1. An outer async_to_sync: when asgiref is loaded, its slot holds the innermost one.
    outer = _asgiref.current_executor()
    if outer is None or isinstance(outer, Waiter):
        waiter = waiter_var.get() if outer is None else outer
        if waiter is not None:
            _check(waiter.thread, what)
            if waiter.offer(job):
                return
    else:
        _check(_asgiref.foreign_owner(outer), what)
        try:
            submit_to(outer, job)
        except RuntimeError:
            pass  # "CurrentThreadExecutor already quit or is broken": try the next place
        else:
            return
    # 2. asgiref's context, 3. crossgate's, 4. asgiref's loop thread, 5. the process-wide one.
    executor = _asgiref.context_executor()
    context = _context_var.get()
    if executor is None and context is None:
        executor = _asgiref.loop_executor(loop)
    if executor is not None:
        _check(_asgiref.foreign_owner(executor), what)
        submit_to(executor, job)
        return
    pool = default_pool() if context is None else context.pool()
    _check(pool.owner(), what)
    pool.put(job)


@after_fork_in_child
def _new_lock() -> None:  # pragma: no cover - runs in forked children only
    global _lock
    _lock = threading.Lock()
