"""`async_to_sync` and its iterator: a task on an existing loop (never a new one, asgiref #370)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar, Token
from typing import Any, TypeVar

from crossgate.concurrency import _asgiref
from crossgate.concurrency._pool import ConcurrencyError, Waiter, describe, local, waiter_var
from crossgate.concurrency._runtime import LoopThread, after_fork_in_child, at_exit
from crossgate.concurrency._sync_iter import DEFAULT_READ_AHEAD, Buffered

R = TypeVar("R")
T = TypeVar("T")

POLL = 1.0  # how often a waiting caller checks that its loop still exists

# With its PID: a child forked from a worker thread sees the loop running, with no thread.
_server_loop: ContextVar[tuple[asyncio.AbstractEventLoop, int] | None] = ContextVar(
    "crossgate_server_loop", default=None
)


# Which process a recorded loop belongs to: bumped in a forked child. Not os.getpid(), a
# system call made for every request.
_process = 0


@after_fork_in_child
def _new_process() -> None:  # pragma: no cover - runs in forked children only
    global _process
    _process += 1


def server_loop() -> asyncio.AbstractEventLoop | None:
    """Return the ASGI server's event loop when called from a ``WSGIToASGI`` worker thread.

    Else, once it closed, and in a forked child: ``None``. Reach it with `async_to_sync`.
    """
    recorded = _server_loop.get()
    if recorded is None or recorded[1] != _process or recorded[0].is_closed():
        return None
    return recorded[0]


def set_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Record ``loop`` as the server loop for the current context (used by the adapters)."""
    _server_loop.set((loop, _process))


_portal: LoopThread | None = None
_portal_lock = threading.Lock()


def portal_loop() -> asyncio.AbstractEventLoop:
    global _portal
    with _portal_lock:
        if _portal is None or _portal.loop.is_closed():
            _portal = LoopThread("crossgate-loop")
        return _portal.loop


@at_exit
def stop_portal() -> None:
    global _portal
    with _portal_lock:
        portal, _portal = _portal, None
    if portal is not None:
        portal.stop()


class AsyncSingleThreadContext(contextlib.AbstractContextManager["AsyncSingleThreadContext"]):
    """asgiref's name for running a block's `async_to_sync` calls on one thread, as ours all do."""

    def __exit__(self, *exc_info: object) -> None:
        return None


class LoopTask:
    """A task on an existing loop, run for a sync thread waiting in `waiter`."""

    __slots__ = ("loop", "skip", "task", "waiter")

    task: asyncio.Task[None]  # set by `_create` on the loop, before any `cancel` queued after it

    def __init__(self, refusal: Callable[[], str]) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop on this thread for the blocking wait to freeze
        else:
            raise ConcurrencyError(refusal())
        job = local.job
        for loop in (None if job is None else job.loop, server_loop(), _asgiref.caller_loop()):
            if loop is not None and loop.is_running() and not loop.is_closed():
                break
        else:
            loop = portal_loop()
        self.loop, self.waiter = loop, Waiter()
        self.skip: frozenset[ContextVar[Any]] = frozenset()

    def start(self, coro: Coroutine[Any, Any, None], ctx: contextvars.Context) -> None:
        """Run ``coro`` in ``ctx`` itself (not a copy), so the caller can read its changes."""
        try:
            self.loop.call_soon_threadsafe(self._create, coro, ctx)
        except RuntimeError:  # closed since __init__ looked at it (the server is shutting down)
            self.loop = portal_loop()
            self.loop.call_soon_threadsafe(self._create, coro, ctx)

    def _create(self, coro: Coroutine[Any, Any, None], ctx: contextvars.Context) -> None:
        self.task = self.loop.create_task(coro, context=ctx)

    def cancel(self) -> None:
        self.task.cancel()

    def call_soon(self, callback: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # closed: the waiting consumer notices
            self.loop.call_soon_threadsafe(callback)

    def enter(self) -> Token[Waiter | None]:
        """First thing in the task: the waiting thread runs its thread-sensitive calls."""
        _asgiref.adopt_locals()  # before enter_waiter sets asgiref's executor Local here
        token = waiter_var.set(self.waiter)
        self.skip = _asgiref.enter_waiter(self.waiter)
        return token


class _Call(LoopTask):
    __slots__ = ("done", "ok", "value")

    async def main(
        self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        token = self.enter()
        try:
            awaitable = func(*args, **kwargs)
            if not inspect.isawaitable(awaitable):
                raise TypeError(
                    f"async_to_sync needs a callable that returns an awaitable; {describe(func)} "
                    f"returned {type(awaitable).__name__}"
                )
            self.value = await awaitable
            self.ok = True
        except GeneratorExit:  # the loop was closed with this task pending; the GC closes it
            closed = f"the event loop running {describe(func)} was closed before it finished"
            self.value = ConcurrencyError(closed)
            raise
        except BaseException as exc:  # KeyboardInterrupt and CancelledError belong to the caller
            self.value = exc
        finally:
            with contextlib.suppress(ValueError):  # closed by the GC, in another context
                waiter_var.reset(token)
            self.done = True
            self.waiter.wake()


def run_sync(
    func: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float | None,
) -> R:
    call = _Call(
        lambda: (
            f"async_to_sync({describe(func)}) was called from a thread that runs an event "
            f"loop, which it would block until the call ends: await {describe(func)}(...) directly "
            "instead"
        )
    )
    call.done = call.ok = False
    ctx = contextvars.copy_context()
    call.start(call.main(func, args, kwargs), ctx)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not call.done:
            wait = POLL if deadline is None else min(POLL, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError(
                    f"{describe(func)} did not finish within {timeout} s; it was cancelled"
                )
            if not call.waiter.wait(wait) and call.loop.is_closed() and not call.done:
                raise ConcurrencyError(
                    f"the event loop running {describe(func)} closed before it finished"
                )
    except BaseException:  # a timeout or KeyboardInterrupt: cancel, not left running for nobody
        call.call_soon(call.cancel)
        raise
    finally:
        call.waiter.close()
    _asgiref.copy_back(ctx, call.skip)
    if call.ok:
        result: R = call.value
        return result
    error: BaseException = call.value
    try:
        raise error
    finally:
        del error, call


class AsyncToSyncIterator(
    Buffered[AsyncIterable[T], T],
    Iterator[T],
    contextlib.AbstractContextManager["AsyncToSyncIterator[T]"],
):
    """A sync iterator over an async iterable; `close` it (or use ``with``) to stop early."""

    def __init__(self, aiterable: AsyncIterable[T], *, read_ahead: int) -> None:
        super().__init__(aiterable, read_ahead)
        self._waiting = self._paused = self._closed = False
        self._task: LoopTask | None = None
        self._space = asyncio.Event()  # set when the task may read on

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __next__(self) -> T:
        if self._closed:
            raise StopIteration
        task = self._task
        if task is None:
            task = self._task = LoopTask(
                lambda: (
                    "async_to_sync_iter was iterated on a thread that runs an event loop, which "
                    "it would block: use async for instead"
                )
            )
            task.start(self._produce(task), contextvars.copy_context())
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
            while not task.waiter.wait(POLL):  # woken per hand-over; the poll notices a closed loop
                if task.loop.is_closed():
                    with self._lock:
                        self._done = True
                        self._error = ConcurrencyError(
                            f"the event loop reading {describe(self._source)} closed"
                        )
                    break
        if resume:
            task.call_soon(self._space.set)
        return item

    def close(self) -> None:
        """Stop reading: cancel the reading task, which closes the source (``aclose()``).

        Raises:
            BaseException: what the source's ``aclose()`` raised.
        """
        if self._closed:
            return
        task = self._task
        if task is None:
            self._closed = True
            aclose = getattr(self._source, "aclose", None)
            if aclose is not None:
                run_sync(aclose, (), {}, None)
            return
        task.call_soon(task.cancel)  # if still running
        with contextlib.suppress(asyncio.CancelledError):
            for _ in self:  # to the end, dropping what the task read meanwhile
                pass
        self._closed = True

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
                except BaseException as exc:  # it matters more than the cancel that closed it
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
    """Iterate the async ``aiterable`` with a plain ``for``, read ``read_ahead`` items ahead.

    Raises:
        ValueError: ``read_ahead`` is below 1.
        ConcurrencyError: (when iterated) the thread runs an event loop: use ``async for``.
    """
    return AsyncToSyncIterator(aiterable, read_ahead=read_ahead)


@after_fork_in_child
def _forget_portal() -> None:  # pragma: no cover - runs in forked children only
    global _portal, _portal_lock
    _portal = None
    _portal_lock = threading.Lock()
