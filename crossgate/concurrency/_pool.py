"""Where jobs run (bounded pools of named threads, waiting threads) and how outcomes return."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextvars import ContextVar
from queue import Empty, SimpleQueue
from typing import Any, ParamSpec, Protocol, TypeVar

from crossgate.concurrency._runtime import after_fork_in_child, at_exit
from crossgate.exceptions import CrossgateError

P = ParamSpec("P")
R = TypeVar("R")

MAX_WORKERS = min(32, (os.cpu_count() or 1) + 4)  # as `run_in_executor(None, ...)` has


class ConcurrencyError(CrossgateError, RuntimeError):
    """A sync/async helper was used where it cannot work (a `RuntimeError`, as asgiref's are)."""


class DeadlockError(ConcurrencyError):
    """Thread-sensitive work was sent to the very thread waiting for it (``thread_name``)."""

    def __init__(self, message: str, *, thread_name: str) -> None:
        super().__init__(message)
        self.thread_name = thread_name


class Inbox:
    """Outcomes for one loop: however many calls finish at once, one wake-up settles them."""

    __slots__ = ("items", "lock", "scheduled")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[asyncio.Future[Any], bool, Any]] = []
        self.scheduled = False

    def post(self, future: asyncio.Future[Any], ok: bool, value: Any) -> None:
        with self.lock:
            self.items.append((future, ok, value))
            if self.scheduled:
                return
            self.scheduled = True
        try:
            future.get_loop().call_soon_threadsafe(self.drain)
        except RuntimeError:  # the loop is closed: whoever awaited these futures is gone with it
            with self.lock:
                self.items.clear()
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


_INBOXES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Inbox] = weakref.WeakKeyDictionary()


def inbox_for(loop: asyncio.AbstractEventLoop) -> Inbox:
    return _INBOXES.get(loop) or _INBOXES.setdefault(loop, Inbox())  # one setdefault wins


class Job(Protocol):
    def run(self) -> None: ...

    def dropped_by(self, future: Future[Any]) -> None: ...


class _Running(Protocol):
    @property
    def loop(self) -> asyncio.AbstractEventLoop | None: ...

    @property
    def cancel_requested(self) -> bool: ...


class _Local(threading.local):
    job: _Running | None = None
    # Called by the job before it hands its outcome back: the next call finds the thread idle.
    release: tuple[object, Callable[[], None]] | None = None


local = _Local()


def describe(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else repr(fn)


def submit_to(executor: Executor, job: Job) -> None:
    # An executor that drops queued work (``cancel_futures=True``) must not strand the caller.
    executor.submit(job.run).add_done_callback(job.dropped_by)


class FnJob:
    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        self.future, self.fn, self.args, self.kwargs = future, fn, args, kwargs

    def dropped_by(self, future: Future[Any]) -> None:
        if future.cancelled():
            self.future.cancel()

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        previous, local.job = local.job, None  # not a crossgate call: hide any outer one
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)
        finally:
            local.job = previous


_NAMES: dict[str, Iterator[int]] = {}
_POOLS: weakref.WeakSet[Pool] = weakref.WeakSet()


class Pool(Executor):
    """Up to ``max_workers`` daemon threads named ``prefix`` + N, started on demand, reused."""

    def __init__(self, prefix: str, max_workers: int) -> None:
        self.prefix, self.max_workers = prefix, max_workers
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._queue: SimpleQueue[Job | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._unclaimed = 0
        self._closed = False

    def owner(self) -> threading.Thread | None:
        """The one thread of a one-thread pool, once started."""
        if self.max_workers == 1 and self._threads:
            return self._threads[0]
        return None

    def put(self, job: Job) -> None:
        thread = None
        with self._lock:
            if self._closed:
                raise ConcurrencyError(f"the {self.prefix}* threads were shut down")
            self._unclaimed += 1
            if self._unclaimed > self._idle and len(self._threads) < self.max_workers:
                number = next(_NAMES.setdefault(self.prefix, itertools.count(1)))
                thread = threading.Thread(
                    target=self._work, name=f"{self.prefix}{number}", daemon=True
                )
                self._threads.append(thread)
        self._queue.put(job)
        if thread is not None:
            thread.start()

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        future: Future[R] = Future()
        self.put(FnJob(future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        # Bound once: after a fork `_reset` replaces them, and this thread is not there.
        queue, lock, threads = self._queue, self._lock, self._threads
        released = False
        try:
            while True:
                if not released:
                    with lock:
                        self._idle += 1
                job = queue.get()
                with lock:
                    self._idle -= 1
                    self._unclaimed -= 1
                if job is None:
                    return
                local.release = (job, self._release)
                job.run()
                del job
                released = local.release is None
                local.release = None
        finally:
            with lock:
                threads.remove(threading.current_thread())

    def _release(self) -> None:
        with self._lock:
            self._idle += 1

    def shutdown(
        self, wait: bool = True, *, cancel_futures: bool = False, timeout: float | None = None
    ) -> None:
        """End the threads once the queued jobs are done; ``wait`` up to ``timeout`` for them."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads if wait else ():
            if thread is not threading.current_thread():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))


SHARED_POOL = Pool("crossgate-sync-", MAX_WORKERS)
SENSITIVE_POOL = Pool("crossgate-sensitive-", 1)  # thread-sensitive calls outside all else


class Waiter(Executor):
    """asgiref's ``CurrentThreadExecutor``, but falling back to `SENSITIVE_POOL` (asgiref #491)."""

    __slots__ = ("_lock", "_open", "_queue", "thread")

    def __init__(self) -> None:
        self.thread = threading.current_thread()
        self._queue: SimpleQueue[Job | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._open = True

    def offer(self, job: Job) -> bool:
        """Queue ``job`` for the waiting thread; ``False`` once it stopped waiting."""
        with self._lock:
            if self._open:
                self._queue.put(job)
            return self._open

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        future: Future[R] = Future()
        job = FnJob(future, fn, args, kwargs)
        if not self.offer(job):
            SENSITIVE_POOL.put(job)
        return future

    def wake(self) -> None:  # ends one `wait`
        self._queue.put(None)

    def wait(self, timeout: float) -> bool:
        """Run jobs sent here until `wake`; ``False`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except Empty:
                return False
            if job is None:
                return True
            job.run()
            del job

    def close(self) -> None:
        """Stop accepting jobs; run those already queued."""
        with self._lock:
            self._open = False
        while True:
            try:
                job = self._queue.get_nowait()
            except Empty:
                return
            if job is not None:
                job.run()


# The waiter of the innermost `async_to_sync` whose coroutine this context belongs to.
waiter_var: ContextVar[Waiter | None] = ContextVar("crossgate_waiter", default=None)


@at_exit
def _shutdown_pools() -> None:  # pragma: no cover - runs at exit (a subprocess test checks)
    deadline = time.monotonic() + 1.0  # a sync call that never returns must not hold the exit
    for pool in list(_POOLS):
        pool.shutdown(timeout=max(0.0, deadline - time.monotonic()))


@after_fork_in_child
def _start_afresh() -> None:  # pragma: no cover - runs in forked children only
    local.job = None  # the forking thread's: its loop (the parent's) has no thread here
    local.release = None
    for pool in list(_POOLS):
        pool._reset()
