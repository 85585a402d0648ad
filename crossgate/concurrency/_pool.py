"""Where jobs run: bounded, named pools that start threads on demand, and waiting threads.

A `Job` (a `sync_to_async` call, a read of a sync iterator) runs on a `Pool` thread, on a
foreign executor through `ExecutorTarget`, or on the thread blocked in `async_to_sync` (a
`Waiter`). `local` tells the code a job runs what the job is: `async_to_sync` finds the
caller's loop there, `check_cancelled` the cancel flag.
"""

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

from crossgate.concurrency._errors import ConcurrencyError
from crossgate.concurrency._runtime import after_fork_in_child, at_exit

__all__ = [
    "MAX_WORKERS",
    "SHARED_POOL",
    "ExecutorTarget",
    "FnJob",
    "Job",
    "Pool",
    "PoolExecutor",
    "Running",
    "Waiter",
    "describe",
    "local",
    "waiter_var",
]

P = ParamSpec("P")
R = TypeVar("R")

# The bound of the shared pool: `concurrent.futures.ThreadPoolExecutor`'s default, so code
# moved from `loop.run_in_executor(None, ...)` keeps the concurrency it had.
MAX_WORKERS = min(32, (os.cpu_count() or 1) + 4)


class Job(Protocol):
    """Work a worker thread runs; `run` never raises."""

    def run(self) -> None: ...

    def dropped_by(self, future: Future[Any]) -> None:
        """Done-callback for a foreign executor's future: act if it was cancelled unrun."""
        ...


class Running(Protocol):
    """What a worker thread knows about the job it runs (see `local`)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None: ...

    @property
    def cancel_requested(self) -> bool: ...


class _Local(threading.local):
    # The job this thread is running: `async_to_sync` finds the caller's loop here and
    # `check_cancelled` the cancel flag.
    job: Running | None = None
    # Set by a pool thread around a job, with the job: that job (and no job nested in it on
    # this thread) calls it just before handing its outcome back, so the thread counts as
    # idle by the time the caller can submit its next call (otherwise calls in a row would
    # start a new thread whenever they won that race).
    release: tuple[object, Callable[[], None]] | None = None


local = _Local()


def describe(fn: object) -> str:
    """A short name for ``fn`` in messages and logs."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else repr(fn)


# -- pools ------------------------------------------------------------------------------------

_NAMES: dict[str, Iterator[int]] = {}
_POOLS: weakref.WeakSet[Pool] = weakref.WeakSet()


def _thread_name(prefix: str) -> str:
    counter = _NAMES.setdefault(prefix, itertools.count(1))
    return f"{prefix}{next(counter)}"


class Pool:
    """Up to ``max_workers`` daemon threads named ``prefix`` + N, started on demand, reused.

    A thread starts only when a job is queued and no thread is idle, so N calls in a row use
    one thread and N concurrent calls at most ``max_workers``. Threads live until `shutdown`
    (at the latest at interpreter exit); after `os.fork` the child starts afresh, since the
    parent's threads do not exist there.
    """

    def __init__(self, prefix: str, max_workers: int) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self.prefix = prefix
        self.max_workers = max_workers
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._queue: SimpleQueue[Job | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._unclaimed = 0
        self._closed = False

    @property
    def threads(self) -> list[threading.Thread]:
        """The pool's live threads."""
        return list(self._threads)

    def owner(self) -> threading.Thread | None:
        """The one thread that runs every job, for a one-thread pool that has started it."""
        if self._pid != os.getpid():
            return None  # the parent's thread, which does not exist in this forked child
        if self.max_workers == 1 and self._threads:
            return self._threads[0]
        return None

    def submit(self, job: Job) -> None:
        """Queue ``job``; start a thread if none is idle and the bound allows.

        Raises:
            ConcurrencyError: the pool was shut down.
        """
        if self._pid != os.getpid():
            self._reset()
        thread = None
        with self._lock:
            if self._closed:
                raise ConcurrencyError(f"the {self.prefix}* threads were shut down")
            self._unclaimed += 1
            if self._unclaimed > self._idle and len(self._threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._work, name=_thread_name(self.prefix), daemon=True
                )
                self._threads.append(thread)
        self._queue.put(job)
        if thread is not None:
            thread.start()

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

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop the threads once they finish the jobs already queued; wait up to ``timeout``."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        if timeout is None:
            return
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


# The pool for calls that are not thread-sensitive; its threads start on demand.
SHARED_POOL = Pool("crossgate-sync-", MAX_WORKERS)


class ExecutorTarget:
    """A `concurrent.futures.Executor` to run jobs on (``sync_to_async(executor=...)``)."""

    __slots__ = ("executor",)

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def submit(self, job: Job) -> None:
        # An executor that drops queued work (``shutdown(cancel_futures=True)``) would
        # otherwise leave the caller waiting forever.
        self.executor.submit(job.run).add_done_callback(job.dropped_by)


class FnJob:
    """``fn(*args)`` for a `concurrent.futures.Future` (an `Executor`'s call) as a crossgate job."""

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
        self.pool.submit(FnJob(future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let the threads end once the jobs already queued are done; ``wait`` for them.

        ``cancel_futures`` is taken for the `Executor` signature only: queued jobs still run.
        """
        threads = self.pool.threads
        self.pool.shutdown()
        for thread in threads if wait else ():
            if thread is not threading.current_thread():
                thread.join()


# -- the waiting thread -----------------------------------------------------------------------
# asgiref calls it a ``CurrentThreadExecutor``: while `async_to_sync` waits for its coroutine,
# the waiting thread is idle, and thread-sensitive sync calls made by that coroutine belong on
# it (Django's connection for the current thread, an open ``transaction.atomic``), so it runs
# them.


class Waiter:
    """The calling thread of one `async_to_sync` call (or one `async_to_sync_iter`)."""

    __slots__ = ("_lock", "_open", "_queue", "thread")

    def __init__(self) -> None:
        self.thread = threading.current_thread()
        self._queue: SimpleQueue[Job | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._open = True

    def offer(self, job: Job) -> bool:
        """Queue ``job`` for the waiting thread; ``False`` once it stopped waiting."""
        with self._lock:
            if not self._open:
                return False
            self._queue.put(job)
            return True

    def wake(self) -> None:
        """End one `wait` (from any thread)."""
        self._queue.put(None)

    def wait(self, timeout: float) -> bool:
        """Run jobs sent here until `wake`; ``False`` if ``timeout`` seconds passed first."""
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
        """Stop accepting jobs; run those already queued (they belong on this thread)."""
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


# -- exit and fork ----------------------------------------------------------------------------


@at_exit
def _shutdown_pools() -> None:  # pragma: no cover - runs at exit (a subprocess test checks)
    # Daemon threads are stopped here, with a bounded wait: a sync call that never returns
    # must not keep the interpreter from exiting.
    deadline = time.monotonic() + 1.0
    for pool in list(_POOLS):
        if pool._pid == os.getpid():
            pool.shutdown(max(0.0, deadline - time.monotonic()))


@after_fork_in_child
def _start_afresh() -> None:  # pragma: no cover - runs in forked children only
    # Only the forking thread exists in the child. If it was running a job, the job's loop
    # (the parent's, still marked running) has no thread here: `async_to_sync` must not send
    # work to it, nor `check_cancelled` read a parent's cancel flag. The pools start afresh
    # (their threads and locks are the parent's); `submit` checks the PID as well.
    local.job = None
    local.release = None
    for pool in list(_POOLS):
        pool._reset()
