"""A sync iterable read on a worker thread, as an async iterator (`sync_to_async_iter`)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from crossgate.concurrency._asgiref import adopt_locals, submit
from crossgate.concurrency._pool import ConcurrencyError, describe, inbox_for, local

T = TypeVar("T")
S = TypeVar("S")

DEFAULT_READ_AHEAD = 64


class Buffered(Generic[S, T]):
    def __init__(self, source: S, read_ahead: int) -> None:
        if read_ahead < 1:
            raise ValueError(f"read_ahead must be at least 1, not {read_ahead}")
        self._source = source
        self._read_ahead = read_ahead
        self._low = read_ahead // 2
        self._lock = threading.Lock()
        self._buffer: deque[T] = deque()
        self._done = False
        self._error: BaseException | None = None

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error


@dataclass(slots=True, eq=False)
class _Pull:
    owner: SyncToAsyncIterator[Any]
    loop: asyncio.AbstractEventLoop
    ctx: contextvars.Context

    @property
    def cancel_requested(self) -> bool:
        return self.owner._closing

    def run(self) -> None:
        owner, ctx = self.owner, self.ctx
        previous, local.job = local.job, self
        try:
            ctx.run(adopt_locals)  # each job may run on another thread
            while True:
                finished, error = ctx.run(owner._pull_batch)
                with owner._lock:
                    # Only now, out of ``ctx``, may another job (on another thread) enter it.
                    if finished or not (owner._closing or len(owner._buffer) <= owner._low):
                        owner._stop_pulling(finished, error)
                        return
        finally:
            local.job = previous

    def dropped_by(self, future: Future[Any]) -> None:
        if future.cancelled():
            source = describe(self.owner._source)
            with self.owner._lock:
                error = ConcurrencyError(f"the executor cancelled the reading of {source}")
                self.owner._stop_pulling(True, error)


class SyncToAsyncIterator(
    Buffered[Iterable[T], T],
    AsyncIterator[T],
    contextlib.AbstractAsyncContextManager["SyncToAsyncIterator[T]"],
):
    """An async iterator over a sync iterable; `aclose` it (or use ``async with``) to stop early."""

    def __init__(
        self,
        iterable: Iterable[T],
        *,
        read_ahead: int = DEFAULT_READ_AHEAD,
        thread_sensitive: bool = False,
        executor: Executor | None = None,
    ) -> None:
        super().__init__(iterable, read_ahead)
        if thread_sensitive and executor is not None:
            raise TypeError("take thread_sensitive=True or an executor, not both")
        self._iterator: Iterator[T] | None = None
        self._sensitive, self._executor = thread_sensitive, executor
        self._waiting: asyncio.Future[None] | None = None
        self._closer: asyncio.Future[None] | None = None
        self._pulling = self._closing = False
        self._ctx: contextvars.Context | None = None

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def __anext__(self) -> T:
        while True:
            with self._lock:
                if self._buffer:
                    item = self._buffer.popleft()
                    refill = not self._pulling and not self._done and len(self._buffer) <= self._low
                    self._pulling = self._pulling or refill
                    break
                if self._done or self._closing:
                    self._raise_error()
                    raise StopAsyncIteration
                start = not self._pulling
                self._pulling = True
                waiting = self._waiting = asyncio.get_running_loop().create_future()
            if start:
                self._submit()
            try:
                await waiting
            finally:
                with self._lock:
                    if self._waiting is waiting:
                        self._waiting = None
        if refill:
            self._submit()
        return item

    async def aclose(self) -> None:
        """Stop reading and close the source on its thread (``close()``, if it has one).

        Raises:
            BaseException: what the source's ``close()`` raised, or an unraised error of it.
        """
        with self._lock:
            self._buffer.clear()
            closer = start = None
            if not (self._done or self._closing):
                self._closing = True
                closer = self._closer = asyncio.get_running_loop().create_future()
                start = not self._pulling
                self._pulling = True
        if start:
            self._submit()
        if closer is not None:
            await closer
        self._raise_error()

    def _submit(self) -> None:
        loop = asyncio.get_running_loop()
        if self._ctx is None:  # the source's contextvars are a copy of the first consumer's
            self._ctx = contextvars.copy_context()
        submit(_Pull(self, loop, self._ctx), loop, self._source, self._sensitive, self._executor)

    def _stop_pulling(self, finished: bool, error: BaseException | None) -> None:  # lock held
        self._pulling = False
        if finished:
            self._done = True
            self._error = error
        for future in (self._waiting, self._closer):
            if future is not None:
                inbox_for(future.get_loop()).post(future, True, None)
        self._waiting = self._closer = None

    def _pull_batch(self) -> tuple[bool, BaseException | None]:
        error: BaseException | None = None
        try:
            iterator = self._iterator
            if iterator is None and not self._closing:
                iterator = self._iterator = iter(self._source)
            while iterator is not None and not self._closing:
                item = next(iterator)
                with self._lock:
                    self._buffer.append(item)
                    waiting, self._waiting = self._waiting, None
                    full = len(self._buffer) >= self._read_ahead
                if waiting is not None:
                    inbox_for(waiting.get_loop()).post(waiting, True, None)
                if full:
                    return False, None
        except StopIteration:
            pass
        except BaseException as exc:
            error = exc
        close = getattr(self._source, "close", None) or getattr(self._iterator, "close", None)
        if close is not None:
            try:
                close()
            except BaseException as exc:
                error = error or exc
        if self._closing and isinstance(error, asyncio.CancelledError):
            error = None  # check_cancelled() after aclose(): the stop that was asked for
        return True, error


def sync_to_async_iter(
    iterable: Iterable[T],
    *,
    read_ahead: int = DEFAULT_READ_AHEAD,
    thread_sensitive: bool = False,
    executor: Executor | None = None,
) -> SyncToAsyncIterator[T]:
    """Iterate the sync ``iterable`` with ``async for``, reading it on a worker thread.

    ``iter()``, ``next()`` and ``close()`` run there, at most ``read_ahead`` items ahead;
    ``thread_sensitive`` and ``executor`` choose the thread as for `sync_to_async`.

    Raises:
        ValueError: ``read_ahead`` is below 1.
        TypeError: both ``thread_sensitive`` and ``executor`` were given.
    """
    return SyncToAsyncIterator(
        iterable, read_ahead=read_ahead, thread_sensitive=thread_sensitive, executor=executor
    )
