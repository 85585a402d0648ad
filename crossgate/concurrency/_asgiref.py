"""Where a thread-sensitive call runs (asgiref's order), and asgiref's Locals, read safely."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import logging
import os
import sys
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Executor, ThreadPoolExecutor
from contextvars import ContextVar, Token
from types import ModuleType
from typing import Any, Self

from crossgate.concurrency._pool import (
    SENSITIVE_POOL,
    SHARED_POOL,
    ConcurrencyError,
    DeadlockError,
    Job,
    Pool,
    Waiter,
    describe,
    submit_to,
    waiter_var,
)
from crossgate.concurrency._runtime import after_fork_in_child

_MISSING = object()
_log = logging.getLogger("crossgate.concurrency")

Rehome = Callable[[Any], Any]


def asgiref_version() -> tuple[int, ...] | None:
    text = getattr(sys.modules.get("asgiref"), "__version__", None)
    if not isinstance(text, str):
        return None
    return tuple(map(int, itertools.takewhile(str.isdigit, text.split("."))))


# asgiref >= 3.12 ties a Local's storage to a thread. Cached: 0.8 us per look-up, 2-3 per call.
@functools.lru_cache(maxsize=1)
def _rehomer(local: ModuleType | None) -> tuple[type, Rehome] | None:
    version = asgiref_version()
    if local is None or (version is not None and version[:2] < (3, 12)):
        return None  # no asgiref, or a plain dict that a copied context carries as it is
    storage_type = getattr(local, "_Storage", None)
    rehome = getattr(local, "_rehome", None)
    if isinstance(storage_type, type) and callable(rehome):
        return storage_type, rehome
    _log.warning(
        "asgiref %s stores Local values in a way crossgate does not know: Django's language, "
        "time zone and script prefix may be lost across crossgate's sync_to_async and "
        "async_to_sync; please report it",
        ".".join(map(str, version or ())) or "(unknown version)",
    )
    return None


def rehomer() -> tuple[type, Rehome] | None:
    return _rehomer(sys.modules.get("asgiref.local"))


def adopt_locals() -> None:
    """Re-home the current context's asgiref Locals to this thread (the context just moved)."""
    found = rehomer()
    if found is not None:
        for var, value in list(contextvars.copy_context().items()):
            if isinstance(value, found[0]):
                var.set(found[1](value))


def copy_back(ctx: contextvars.Context, skip: Collection[contextvars.ContextVar[Any]] = ()) -> None:
    """Set here every variable but ``skip`` whose value ``ctx`` changed, as asgiref does."""
    found = rehomer()
    for var, value in ctx.items():
        if var.get(_MISSING) is not value and var not in skip:
            if found is not None and isinstance(value, found[0]):
                value = found[1](value)
            var.set(value)


def caller_loop() -> asyncio.AbstractEventLoop | None:
    """The loop awaiting the asgiref ``sync_to_async`` call this thread runs."""
    sync = sys.modules.get("asgiref.sync")
    threadlocal = sync.SyncToAsync.threadlocal if sync else None
    if getattr(threadlocal, "main_event_loop_pid", None) != os.getpid():  # asgiref #194: forked
        return None
    loop: asyncio.AbstractEventLoop | None = getattr(threadlocal, "main_event_loop", None)
    return loop


def enter_waiter(waiter: Waiter) -> frozenset[ContextVar[Any]]:
    """Send asgiref's thread-sensitive calls to ``waiter``; return the variables set for it."""
    # Set even with no outer value visible: a re-homed storage would bring a stale one back.
    sync = sys.modules.get("asgiref.sync")
    if sync is None:
        return frozenset()
    before = contextvars.copy_context()
    sync.AsyncToSync.executors.current = waiter
    after = contextvars.copy_context()
    return frozenset(var for var, value in after.items() if before.get(var, _MISSING) is not value)


MAX_CONTEXT_THREADS = 32  # past it, a new context shares the least-used thread

_lock = threading.Lock()
_idle: list[Pool] = []
_users: dict[Pool, int] = {}  # leased threads -> how many contexts use each


class ThreadSensitiveContext:
    """Give the thread-sensitive calls made inside this ``async with`` block a thread of their own.

    Raises:
        ConcurrencyError: (from a thread-sensitive call) a task outlived the context.
    """

    def __init__(self) -> None:
        self._token: Token[ThreadSensitiveContext | None] | None = None
        self._pool: Pool | None = None

    async def __aenter__(self) -> Self:
        if _context_var.get() is None:
            self._token = _context_var.set(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._token is None:
            return
        _context_var.reset(self._token)
        self._token = None
        pool, self._pool = self._pool, None
        if pool is not None:
            with _lock:
                _users[pool] -= 1
                if not _users[pool]:
                    del _users[pool]
                    _idle.append(pool)

    def pool(self) -> Pool:
        """This context's thread (leased on first use)."""
        if self._token is None:  # only an exited context is seen without one
            raise ConcurrencyError(
                "a thread-sensitive call was made after its ThreadSensitiveContext exited: "
                "tasks started inside the context must finish before it exits"
            )
        if self._pool is None:
            with _lock:
                if len(_users) >= MAX_CONTEXT_THREADS:
                    self._pool = min(_users, key=_users.__getitem__)
                else:  # a new pool's thread starts on first use
                    self._pool = _idle.pop() if _idle else Pool(SENSITIVE_POOL.prefix, 1)
                _users[self._pool] = _users.get(self._pool, 0) + 1
        return self._pool


_context_var: ContextVar[ThreadSensitiveContext | None] = ContextVar(
    "crossgate_thread_sensitive_context", default=None
)


def _check(executor: Executor, what: object) -> None:
    """Refuse to send ``what`` to the one thread of ``executor`` if it is this thread."""
    if isinstance(executor, Waiter):
        owner: object = executor.thread
    elif isinstance(executor, Pool):
        owner = executor.owner()
    else:  # asgiref's executors name their thread only in private attributes
        owner = getattr(executor, "_work_thread", None)
        threads = getattr(executor, "_threads", None)
        if isinstance(executor, ThreadPoolExecutor) and threads:
            owner = next(iter(threads))
    thread = threading.current_thread()
    if owner is thread:
        raise DeadlockError(
            f"the thread-sensitive call {describe(what)} would have to run on thread "
            f"{thread.name!r}, which is the thread awaiting it (it runs the event loop that "
            "waits for the call), so the call could never start. Call it without sync_to_async "
            "there, or run the async code with async_to_sync instead of a new event loop on "
            "that thread",
            thread_name=thread.name,
        )


def submit(
    job: Job,
    loop: asyncio.AbstractEventLoop,
    what: object,
    thread_sensitive: bool,
    executor: Executor | None,
) -> None:
    """Run ``job`` (calling ``what``, awaited on ``loop``) where `sync_to_async` would."""
    if not thread_sensitive:
        if executor is None:
            SHARED_POOL.put(job)
        else:
            submit_to(executor, job)
        return
    sync = sys.modules.get("asgiref.sync")
    # 1. An outer async_to_sync: when asgiref is loaded, its slot holds the innermost one.
    slot = getattr(sync.AsyncToSync.executors, "current", None) if sync else None
    outer = waiter_var.get() if slot is None else slot
    if outer is not None:
        _check(outer, what)
        if isinstance(outer, Waiter):
            if outer.offer(job):
                return
        else:
            try:
                submit_to(outer, job)
            except RuntimeError:
                pass  # "CurrentThreadExecutor already quit or is broken": try the next place
            else:
                return
    # 2. asgiref's context, 3. crossgate's, 4. the asgiref async_to_sync that made the loop.
    context = _context_var.get()
    asgiref_context = sync.SyncToAsync.thread_sensitive_context.get(None) if sync else None
    if sync is not None and asgiref_context is not None:
        if getattr(asgiref_context, "_exited", False):
            raise ConcurrencyError(
                "asgiref's ThreadSensitiveContext has exited: tasks created inside it must "
                "finish before it exits"
            )
        executors = sync.SyncToAsync.context_to_thread_executor
        executor = executors.get(asgiref_context)
        if executor is None:
            executor = executors[asgiref_context] = Pool("crossgate-asgiref-context-", 1)
    elif context is None and sync is not None:
        executor = sync.AsyncToSync.loop_thread_executors.get(loop)
    if executor is not None:
        _check(executor, what)
        submit_to(executor, job)
        return
    pool = SENSITIVE_POOL if context is None else context.pool()
    _check(pool, what)
    pool.put(job)


@after_fork_in_child
def _new_lock() -> None:  # pragma: no cover - runs in forked children only
    global _lock
    _lock = threading.Lock()
