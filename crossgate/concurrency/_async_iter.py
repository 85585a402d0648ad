"""An async iterable read by a task on an event loop, as a sync iterator (`async_to_sync_iter`)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterable, AsyncIterator
from typing import Self, TypeVar

from crossgate.concurrency._loops import POLL, LoopTask, run_sync
from crossgate.concurrency._pool import ConcurrencyError, describe, waiter_var
from crossgate.concurrency._sync_iter import DEFAULT_READ_AHEAD, Buffered

T = TypeVar("T")


class AsyncToSyncIterator(Buffered[AsyncIterable[T], T]):
    """A sync iterator over an async iterable, read by a task on an event loop.

    `close` it (WSGI servers do) or use ``with`` when stopping early.
    """

    def __init__(self, aiterable: AsyncIterable[T], *, read_ahead: int) -> None:
        super().__init__(aiterable, read_ahead)
        self._waiting = False
        self._paused = False
        self._closed = False
        self._task: LoopTask | None = None
        self._space = asyncio.Event()  # set when the task may read on

    def __iter__(self) -> Self:
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __next__(self) -> T:
        if self._closed:
            raise StopIteration
        task = self._task or self._start()
        while True:
            with self._lock:
                if self._buffer:
                    item = self._buffer.popleft()
                    resume = self._paused and len(self._buffer) <= self._low
                    self._paused = self._paused and not resume
                    break
                if self._done:
                    task.waiter.close()
                    self._raise_error()
                    raise StopIteration
                self._waiting = True
            self._wait(task)
        if resume:
            task.call_soon(self._resume)
        return item

    def close(self) -> None:
        """Stop reading: cancel the reading task, which closes the source (``aclose()``).

        Raises:
            BaseException: what the source's ``aclose()`` raised.
        """
        if self._closed:
            return
        self._closed = True
        task = self._task
        if task is None:
            aclose = getattr(self._source, "aclose", None)
            if aclose is not None:
                run_sync(aclose, (), {}, None)
            return
        with self._lock:
            self._buffer.clear()
            running = not self._done
        if running:
            task.call_soon(task.cancel)
            while True:
                with self._lock:
                    if self._done:
                        break
                    self._waiting = True
                self._wait(task)
        task.waiter.close()
        with contextlib.suppress(asyncio.CancelledError):
            self._raise_error()

    def _start(self) -> LoopTask:
        task = self._task = LoopTask(
            lambda: (
                "async_to_sync_iter was iterated on a thread that runs an event loop, which "
                "it would block: use async for instead"
            )
        )
        task.start(self._produce(task), contextvars.copy_context())
        return task

    def _resume(self) -> None:
        self._space.set()

    def _wait(self, task: LoopTask) -> None:
        # Woken per hand-over or at the end; the poll only notices a loop closed under the task.
        while not task.waiter.wait(POLL):
            if task.loop.is_closed():
                with self._lock:
                    self._done = True
                    self._error = ConcurrencyError(
                        f"the event loop reading {describe(self._source)} closed"
                    )
                return

    async def _produce(self, task: LoopTask) -> None:
        waiter, space = task.waiter, self._space
        token = task.enter()
        error: BaseException | None = None
        iterator: AsyncIterator[T] | None = None
        try:
            iterator = aiter(self._source)
            while True:
                with self._lock:
                    full = len(self._buffer) >= self._read_ahead
                    if full:
                        self._paused = True
                        space.clear()
                if full:
                    await space.wait()
                    continue
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    break
                with self._lock:
                    self._buffer.append(item)
                    wake, self._waiting = self._waiting, False
                if wake:
                    waiter.wake()
        except BaseException as exc:
            error = exc
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except BaseException as exc:
                    # Its failure matters more than the cancellation that closed it.
                    if error is None or isinstance(error, asyncio.CancelledError):
                        error = exc
            with contextlib.suppress(ValueError):  # closed by the GC, in another context
                waiter_var.reset(token)
            with self._lock:
                self._done = True
                self._error = error
                wake, self._waiting = self._waiting, False
            if wake:
                waiter.wake()


def async_to_sync_iter(
    aiterable: AsyncIterable[T], *, read_ahead: int = DEFAULT_READ_AHEAD
) -> AsyncToSyncIterator[T]:
    """Iterate the async ``aiterable`` with a plain ``for``, from sync code.

    A task on the loop `async_to_sync` would use reads ahead; the sync thread takes items in
    batches and runs the thread-sensitive calls the task makes.

    Args:
        read_ahead: items read ahead of the consumer, at most.

    Raises:
        ValueError: ``read_ahead`` is below 1.
        ConcurrencyError: (when iterated) the thread runs an event loop: use ``async for``.
    """
    return AsyncToSyncIterator(aiterable, read_ahead=read_ahead)
