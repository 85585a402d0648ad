"""One `sync_to_async` call, the trip of its outcome back to the loop, and its orphans."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, NamedTuple

from crossgate.concurrency._asgiref import adopt_locals
from crossgate.concurrency._errors import ConcurrencyError
from crossgate.concurrency._pool import describe, local
from crossgate.concurrency._runtime import after_fork_in_child

_log = logging.getLogger("crossgate.concurrency")


class _Inbox:
    """Outcomes for one loop: however many calls finish at once, one wake-up settles them."""

    __slots__ = ("items", "lock", "scheduled")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[asyncio.Future[Any], bool, Any]] = []
        self.scheduled = False

    def drain(self) -> None:
        with self.lock:
            items, self.items = self.items, []
            self.scheduled = False
        for future, ok, value in items:
            if not future.done():  # else its caller was cancelled
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)


_INBOXES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = weakref.WeakKeyDictionary()
_INBOXES_LOCK = threading.Lock()


def inbox_for(loop: asyncio.AbstractEventLoop) -> _Inbox:
    inbox = _INBOXES.get(loop)
    if inbox is None:
        with _INBOXES_LOCK:
            inbox = _INBOXES.setdefault(loop, _Inbox())
    return inbox


def post(
    loop: asyncio.AbstractEventLoop,
    inbox: _Inbox,
    future: asyncio.Future[Any],
    ok: bool,
    value: Any,
) -> None:
    with inbox.lock:
        inbox.items.append((future, ok, value))
        if inbox.scheduled:
            return
        inbox.scheduled = True
    try:
        loop.call_soon_threadsafe(inbox.drain)
    except RuntimeError:  # the loop is closed: whoever awaited these futures is gone with it
        with inbox.lock:
            inbox.items.clear()
            inbox.scheduled = False


_QUEUED, _RUNNING, _ORPHANED, _DONE, _DROPPED = range(5)
_STATE_LOCK = threading.Lock()


class OrphanedCalls(NamedTuple):
    """Sync calls whose awaiting caller was cancelled while they ran (see `orphaned_calls`)."""

    running: int
    """Orphaned calls still running now."""
    total: int
    """Calls orphaned since the process started."""


_orphans = {"running": 0, "total": 0}


def orphaned_calls() -> OrphanedCalls:
    """How many sync calls a cancelled caller left running: now, and in total.

    Each is also logged (logger ``crossgate.concurrency``); a growing ``running`` figure means
    threads are busy with abandoned work.
    """
    with _STATE_LOCK:
        return OrphanedCalls(_orphans["running"], _orphans["total"])


def check_cancelled() -> None:
    """Raise `asyncio.CancelledError` if the caller awaiting this thread's work gave up.

    Call it from sync code run by `sync_to_async` (or read by `sync_to_async_iter`) where
    stopping early is safe: once the awaiting task is cancelled, or the async iterator closed,
    it raises (a `BaseException`, past ``except Exception``). Elsewhere it does nothing.

    Raises:
        asyncio.CancelledError: the awaiting caller was cancelled.
    """
    job = local.job
    if job is not None and job.cancel_requested:
        raise asyncio.CancelledError("the caller awaiting this sync call was cancelled")


class Call:
    """One `sync_to_async` call: run on a worker thread, settled on the caller's loop."""

    __slots__ = ("args", "ctx", "fn", "future", "inbox", "kwargs", "loop", "state", "thread_name")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        ctx: contextvars.Context,
    ) -> None:
        self.loop = loop
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.ctx = ctx
        self.inbox = inbox_for(loop)
        self.future: asyncio.Future[Any] = loop.create_future()
        self.state = _QUEUED
        self.thread_name = ""

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
        except BaseException as exc:
            value, ok = exc, False
            if isinstance(exc, StopIteration):
                # asyncio futures refuse StopIteration (PEP 479): the caller would hang.
                value = RuntimeError(f"{describe(self.fn)} raised StopIteration")
                value.__cause__ = exc
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
            post(self.loop, self.inbox, self.future, ok, value)
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
        post(self.loop, self.inbox, self.future, False, error)


@after_fork_in_child
def _reset_state() -> None:  # pragma: no cover - runs in forked children only
    # A lock another thread held at the fork would stay locked in the child forever.
    global _STATE_LOCK, _INBOXES_LOCK
    _STATE_LOCK = threading.Lock()
    _INBOXES_LOCK = threading.Lock()
    _orphans["running"] = 0
