"""Meet asgiref where Django looks: its thread-sensitive executors, its caller's loop, its Locals.

Django calls asgiref directly (``ASGIHandler`` enters asgiref's ``ThreadSensitiveContext`` per
request; the async ORM uses asgiref's ``sync_to_async``). To share Django's database connection,
crossgate's thread-sensitive calls run on the thread asgiref would pick (found through asgiref's
class attributes), and asgiref's calls inside crossgate's `async_to_sync` come back to the
waiting thread. Private attributes are read only where asgiref offers nothing public, each
with a safe answer when missing.

Django keeps its active language, time zone, script prefix and urlconf in asgiref ``Local``s:
since asgiref 3.12 their storage is tagged with its thread, and asgiref re-tags ("re-homes")
it whenever it moves a context to another thread. crossgate re-homes at the same points, or
Django code run through it would see the default language, time zone, prefix and urlconf. It
uses asgiref's internal ``asgiref.local._Storage`` and ``_rehome`` (only in `_rehomer`, behind
a version check). crossgate never imports asgiref: it looks only at what the app loaded.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextvars import ContextVar
from types import ModuleType
from typing import Any, ParamSpec, TypeVar

from crossgate.concurrency._errors import ConcurrencyError
from crossgate.concurrency._pool import FnJob, Pool, PoolExecutor, Waiter

__all__ = [
    "CHECKED",
    "WaiterExecutor",
    "adopt_locals",
    "asgiref_version",
    "caller_loop",
    "context_executor",
    "copy_back",
    "current_executor",
    "enter_waiter",
    "foreign_owner",
    "loop_executor",
    "rehomed",
    "rehomer",
]

P = ParamSpec("P")
R = TypeVar("R")

_MISSING = object()
_log = logging.getLogger("crossgate.concurrency")

# asgiref minor versions whose Local storage was checked against crossgate's helpers by
# tests/concurrency/test_asgiref_locals.py (which fails on any other version).
CHECKED = frozenset({(3, 11), (3, 12), (3, 13)})
_TAGGED_SINCE = (3, 12)

Rehome = Callable[[Any], Any]


def asgiref_version() -> tuple[int, ...] | None:
    """The loaded asgiref's version as integers (``(3, 13, 0)``), or ``None`` if not loaded."""
    text = getattr(sys.modules.get("asgiref"), "__version__", None)
    if not isinstance(text, str):
        return None
    parts = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


# Cached per asgiref.local module: a sync_to_async call asks two or three times, and the look-ups
# cost 0.8 us each where the cached answer costs 0.1 us.
@functools.lru_cache(maxsize=1)
def _rehomer(local: ModuleType) -> tuple[type, Rehome] | None:
    version = asgiref_version()
    if version is not None and version[:2] < _TAGGED_SINCE:
        return None  # a plain dict: a copied context carries it as it is
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
    """asgiref's Local storage type and the function re-tagging it, if the loaded one tags."""
    local = sys.modules.get("asgiref.local")
    return None if local is None else _rehomer(local)


def rehomed(value: object, found: tuple[type, Rehome] | None) -> object:
    """``value`` re-tagged for the current thread if it is asgiref ``Local`` storage."""
    return found[1](value) if found is not None and isinstance(value, found[0]) else value


def adopt_locals() -> None:
    """Re-home every asgiref ``Local`` storage of the current context to the current thread.

    Called inside a context just moved to this thread, where asgiref's helpers re-home.
    """
    found = rehomer()
    if found is not None:
        for var, value in list(contextvars.copy_context().items()):
            if isinstance(value, found[0]):
                var.set(found[1](value))


def copy_back(ctx: contextvars.Context, skip: Collection[contextvars.ContextVar[Any]] = ()) -> None:
    """Set in the current context every variable whose value ``ctx`` changed (but ``skip``).

    `asyncio.to_thread` and anyio drop these changes; asgiref keeps them (a `ContextVar` set in
    a sync view is seen by the caller), and hands ``Local`` storage back re-homed.
    """
    found = rehomer()
    for var, value in ctx.items():
        if var.get(_MISSING) is not value and var not in skip:
            var.set(rehomed(value, found))


def _asgiref() -> ModuleType | None:
    return sys.modules.get("asgiref.sync")


def current_executor() -> Executor | None:
    """asgiref's executor for the sync thread waiting in an outer asgiref `async_to_sync`."""
    sync = _asgiref()
    executor: Executor | None = (
        getattr(sync.AsyncToSync.executors, "current", None) if sync else None
    )
    return executor


def context_executor() -> Executor | None:
    """The thread of the asgiref ``ThreadSensitiveContext`` in force (Django's request thread).

    Made as asgiref makes it when this call comes first, and stored where asgiref looks.

    Raises:
        ConcurrencyError: the context exited and this task outlived it.
    """
    sync = _asgiref()
    context = None if sync is None else sync.SyncToAsync.thread_sensitive_context.get(None)
    if sync is None or context is None:
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
    executor: Executor | None = sync.AsyncToSync.loop_thread_executors.get(loop) if sync else None
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
    """The one thread of a thread-sensitive executor, for the deadlock check.

    asgiref's (a ``CurrentThreadExecutor``; a context's ``ThreadPoolExecutor(max_workers=1)``)
    name it only in private attributes; ``None`` (no check) when they are missing.
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


class WaiterExecutor(Executor):
    """A crossgate `Waiter` as the executor asgiref submits thread-sensitive work to."""

    def __init__(self, waiter: Waiter, fallback: Callable[[], Pool]) -> None:
        self.waiter = waiter
        self._fallback = fallback

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        future: Future[R] = Future()
        job = FnJob(future, fn, args, kwargs)
        if not self.waiter.offer(job):
            # The waiting thread moved on (a task outlived its async_to_sync), where asgiref
            # raises "CurrentThreadExecutor already quit or is broken" (asgiref #491, #526).
            self._fallback().submit(job)
        return future


def enter_waiter(waiter: Waiter, fallback: Callable[[], Pool]) -> frozenset[ContextVar[Any]]:
    """Inside `async_to_sync`'s task: send asgiref's thread-sensitive calls to ``waiter``.

    Sets ``AsyncToSync.executors.current``, as asgiref's own ``async_to_sync`` does, even when
    an outer value is not visible on this thread: asgiref re-homes its storage on every
    ``sync_to_async``, which would make a stale outer executor visible again (and work sent
    there would wait for a thread waiting for us). Returns the context variables behind that
    setting, which the caller must not copy back (asgiref restores them likewise).
    """
    sync = _asgiref()
    if sync is None:
        return frozenset()
    before = contextvars.copy_context()
    sync.AsyncToSync.executors.current = WaiterExecutor(waiter, fallback)
    after = contextvars.copy_context()
    return frozenset(var for var, value in after.items() if before.get(var, _MISSING) is not value)
