"""Meet asgiref where Django looks: its thread-sensitive executors, its caller's loop, its Locals.

Private attributes are read only where asgiref offers nothing public, each with a safe answer
when missing; crossgate never imports asgiref, it looks only at what the app loaded.
"""

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
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from crossgate.concurrency._errors import ConcurrencyError
from crossgate.concurrency._pool import Pool, Waiter

_MISSING = object()
_log = logging.getLogger("crossgate.concurrency")

# asgiref minor versions checked by tests/concurrency/test_asgiref_locals.py (fails on others).
CHECKED = frozenset({(3, 11), (3, 12), (3, 13)})

Rehome = Callable[[Any], Any]


def asgiref_version() -> tuple[int, ...] | None:
    text = getattr(sys.modules.get("asgiref"), "__version__", None)
    if not isinstance(text, str):
        return None
    return tuple(map(int, itertools.takewhile(str.isdigit, text.split("."))))


# Since asgiref 3.12 a Local's storage is tagged with its thread, and asgiref re-tags it
# ("re-homes") whenever it moves a context to another thread: crossgate must re-home at the
# same points, or Django's language, time zone, script prefix and urlconf are lost.
# Cached: the look-ups cost 0.8 us each, asked two or three times per sync_to_async call.
@functools.lru_cache(maxsize=1)
def _rehomer(local: ModuleType) -> tuple[type, Rehome] | None:
    version = asgiref_version()
    if version is not None and version[:2] < (3, 12):
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
    local = sys.modules.get("asgiref.local")
    return None if local is None else _rehomer(local)


def rehomed(value: object, found: tuple[type, Rehome] | None) -> object:
    return found[1](value) if found is not None and isinstance(value, found[0]) else value


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
            var.set(rehomed(value, found))


def _asgiref() -> ModuleType | None:
    return sys.modules.get("asgiref.sync")


def current_executor() -> Executor | None:
    """asgiref's executor for the thread waiting in an outer ``async_to_sync``."""
    sync = _asgiref()
    executor: Executor | None = (
        getattr(sync.AsyncToSync.executors, "current", None) if sync else None
    )
    return executor


def context_executor() -> Executor | None:
    """The thread of asgiref's ``ThreadSensitiveContext`` in force, made as asgiref makes it.

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
        executor = executors[context] = Pool("crossgate-asgiref-context-", 1)
    return executor


def loop_executor(loop: asyncio.AbstractEventLoop) -> Executor | None:
    """The waiting thread of the asgiref ``async_to_sync`` that created ``loop``."""
    sync = _asgiref()
    executor: Executor | None = sync.AsyncToSync.loop_thread_executors.get(loop) if sync else None
    return executor


def caller_loop() -> asyncio.AbstractEventLoop | None:
    """The loop awaiting the asgiref ``sync_to_async`` call this thread runs."""
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
    """The one thread of a thread-sensitive executor, if its private attributes say."""
    if isinstance(executor, Pool):
        return executor.owner()
    thread = getattr(executor, "_work_thread", None)
    if isinstance(thread, threading.Thread):
        return thread
    threads = getattr(executor, "_threads", None)
    if isinstance(executor, ThreadPoolExecutor) and threads:
        only: threading.Thread = next(iter(threads))
        return only
    return None


def enter_waiter(waiter: Waiter) -> frozenset[ContextVar[Any]]:
    """Send asgiref's thread-sensitive calls to ``waiter``; return the variables set for it.

    Set even when an outer value is not visible here: asgiref re-homes its storage on every
    ``sync_to_async``, which would bring a stale outer executor back (and deadlock). The caller
    must not copy those variables back (asgiref restores them likewise).
    """
    sync = _asgiref()
    if sync is None:
        return frozenset()
    before = contextvars.copy_context()
    sync.AsyncToSync.executors.current = waiter
    after = contextvars.copy_context()
    return frozenset(var for var, value in after.items() if before.get(var, _MISSING) is not value)
