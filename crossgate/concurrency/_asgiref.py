"""Meet asgiref where Django looks: its thread-sensitive executors, its caller's loop, its Locals.

Django calls asgiref directly (``ASGIHandler`` enters asgiref's ``ThreadSensitiveContext`` per
request; the async ORM uses asgiref's ``sync_to_async(thread_sensitive=True)``). For crossgate's
thread-sensitive calls to share Django's database connection, they must run on the thread
asgiref would pick, and asgiref's calls inside crossgate's `async_to_sync` must come back to the
waiting thread as they would under asgiref's own. That uses asgiref's class attributes
(``SyncToAsync.thread_sensitive_context``, ``SyncToAsync.context_to_thread_executor``,
``AsyncToSync.executors``, ``AsyncToSync.loop_thread_executors``, ``SyncToAsync.threadlocal``).
Three private attributes are read where asgiref offers nothing public, each with a safe answer
when it is missing: whether a ``ThreadSensitiveContext`` exited, and the thread of an executor
(`foreign_owner`).

Django keeps the active language, time zone, script prefix and urlconf in asgiref ``Local``s,
stored in a contextvar: a plain dict up to asgiref 3.11, which a copied context carries as it is;
since 3.12 tagged with the thread that owns it, so that a thread sees only its own (a thread that
merely *inherited* a context, as on free-threaded Python 3.14, sees nothing). asgiref's helpers
re-tag ("re-home") it whenever they move a context to another thread: at the start of the work
there, and when the changes come back (``asgiref.sync._restore_context``). crossgate's helpers
move contexts at the same points and re-home there too, or Django code run through them sees
the default language, prefix, time zone and urlconf. asgiref has no public way to re-home: the
storage class and the function (``asgiref.local._Storage``, ``_rehome``) are internal, used
only by `_rehomer`, behind a version check; a test fails on an asgiref version nobody checked.

crossgate never imports asgiref: all of this looks only at what the application already
loaded (Django does).
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


# -- Locals -----------------------------------------------------------------------------------

# asgiref minor versions whose Local storage crossgate was checked against, by a test comparing
# crossgate's helpers with asgiref's own (tests/concurrency/test_asgiref_locals.py). 3.11 needs
# nothing; 3.12 and 3.13 tag the storage with its thread.
CHECKED = frozenset({(3, 11), (3, 12), (3, 13)})
_TAGGED_SINCE = (3, 12)

Rehome = Callable[[Any], Any]


def asgiref_version() -> tuple[int, ...] | None:
    """The loaded asgiref's version as integers (``(3, 13, 0)``), or ``None`` if not loaded."""
    module = sys.modules.get("asgiref")
    text = getattr(module, "__version__", None)
    if not isinstance(text, str):
        return None
    parts = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


# Once per asgiref.local module (a stand-in module in the tests is a new key): a sync_to_async
# call asks two or three times, and the version parse and look-ups cost 0.8 us each time where
# the cached answer costs 0.1 us (about 2 % of an 84 us call, measured with asgiref loaded).
@functools.lru_cache(maxsize=1)
def _rehomer(local: ModuleType) -> tuple[type, Rehome] | None:
    # The one use of asgiref.local's internals (see the module docstring).
    version = asgiref_version()
    if version is not None and version[:2] < _TAGGED_SINCE:
        return None  # a plain dict: a copied context carries it as it is
    storage_type = getattr(local, "_Storage", None)
    rehome = getattr(local, "_rehome", None)
    if isinstance(storage_type, type) and callable(rehome):
        # A version not in CHECKED that still has both is taken on trust; the test named
        # above fails on it until someone has compared asgiref's re-homing with ours.
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


def adopt_locals() -> None:
    """Hand the asgiref ``Local`` storage of the current context to the current thread.

    Call it inside a context that was just moved to this thread (in ``ctx.run`` on a worker
    thread, at the start of a task made in another thread's context), where asgiref's helpers
    re-home: every ``Local``'s storage found there is re-tagged, whichever thread it had.
    """
    found = rehomer()
    if found is None:
        return
    storage_type, rehome = found
    for var, value in list(contextvars.copy_context().items()):
        if isinstance(value, storage_type):
            var.set(rehome(value))


def rehomed(value: object, found: tuple[type, Rehome] | None) -> object:
    """``value`` re-tagged for the current thread if it is asgiref ``Local`` storage."""
    if found is not None and isinstance(value, found[0]):
        return found[1](value)
    return value


def copy_back(ctx: contextvars.Context, skip: Collection[contextvars.ContextVar[Any]] = ()) -> None:
    """Set in the current context every variable whose value ``ctx`` changed (but ``skip``).

    `asyncio.to_thread` and anyio drop these changes; asgiref keeps them, and code moved
    from asgiref relies on it (a `ContextVar` set in a sync view is seen by the caller).
    asgiref ``Local`` storage comes back re-homed to this thread, as asgiref's helpers hand it
    back (see the module docstring).
    """
    found = rehomer()
    for var, value in ctx.items():
        if var.get(_MISSING) is not value and var not in skip:
            var.set(rehomed(value, found))


# -- executors and loops ----------------------------------------------------------------------


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


class WaiterExecutor(Executor):
    """A crossgate `Waiter` as the executor asgiref submits thread-sensitive work to."""

    def __init__(self, waiter: Waiter, fallback: Callable[[], Pool]) -> None:
        self.waiter = waiter
        self._fallback = fallback

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        future: Future[R] = Future()
        job = FnJob(future, fn, args, kwargs)
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
