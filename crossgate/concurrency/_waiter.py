"""A sync thread blocked on async code, serving the thread-sensitive work sent back to it.

asgiref calls this a ``CurrentThreadExecutor``: while `async_to_sync` waits for its coroutine,
the waiting thread is idle, and thread-sensitive sync calls made by that coroutine belong on it
(Django's connection for the current thread, an open ``transaction.atomic``), so it runs them.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from queue import Empty, SimpleQueue

from crossgate.concurrency._pool import Job

__all__ = ["Waiter", "waiter_var"]


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
