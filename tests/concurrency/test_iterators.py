"""Iterators across the line: read ahead in batches, closed on their own side."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.validate import validator

import pytest

from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.concurrency import _loops as loops
from crossgate.concurrency import (
    async_to_sync_iter,
    check_cancelled,
    set_server_loop,
    sync_to_async,
    sync_to_async_iter,
)
from crossgate.concurrency._pool import ConcurrencyError, Inbox
from crossgate.testing import call_http
from crossgate.types import StartResponse, WSGIEnvironment
from tests.concurrency.conftest import WAIT, run

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


class Counting:
    """Counts calls of a function while passing them through."""

    def __init__(self, func: Any) -> None:
        self.func = func
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return self.func(*args)


class Body:
    """A WSGI-style iterable: ``iter()`` and ``close()`` record the thread they ran on."""

    def __init__(self, items: Iterable[bytes]) -> None:
        self.items = items
        self.iter_thread = ""
        self.close_thread = ""

    def __iter__(self) -> Iterator[bytes]:
        self.iter_thread = threading.current_thread().name
        return iter(self.items)

    def close(self) -> None:
        self.close_thread = threading.current_thread().name


# -- sync iterable -> async iterator --------------------------------------------------------------


def test_items_arrive_in_order_and_iter_runs_on_the_worker() -> None:
    body = Body([b"a", b"b", b"c"])

    async def main() -> list[bytes]:
        return [item async for item in sync_to_async_iter(body)]

    assert run(main) == [b"a", b"b", b"c"]
    # A queryset runs its query in iter(): never on the event loop's thread.
    assert body.iter_thread.startswith("crossgate-sync-")
    # Exhausted: closed as a WSGI server would close it, on the worker thread too.
    assert body.close_thread.startswith("crossgate-sync-")


def test_thread_hand_offs_are_per_batch_not_per_item(monkeypatch: pytest.MonkeyPatch) -> None:
    read_ahead = 50
    asked_last = threading.Event()
    posts = Counting(Inbox.post)
    monkeypatch.setattr(Inbox, "post", lambda self, *args: posts(self, *args))

    def produce() -> Iterator[int]:
        for i in range(read_ahead):
            if i == read_ahead - 1:
                asked_last.set()
            yield i

    async def main() -> list[int]:
        stream = sync_to_async_iter(produce(), read_ahead=read_ahead)
        items = [await anext(stream)]
        # Hold the loop until the worker read everything: the rest is there, ready.
        assert asked_last.wait(WAIT)
        items += [item async for item in stream]
        return items

    assert run(main) == list(range(read_ahead))
    # One wake-up for the first item, at most one if the consumer caught up with the last
    # append, one for the end: never one per item.
    assert posts.calls <= 3


def test_a_fast_stream_needs_few_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossgate.concurrency._pool import SHARED_POOL

    read_ahead, total = 16, 1000
    submit = Counting(SHARED_POOL.put)
    monkeypatch.setattr(SHARED_POOL, "put", submit)

    async def main() -> int:
        return sum([item async for item in sync_to_async_iter(range(total), read_ahead=read_ahead)])

    assert run(main) == sum(range(total))
    # A job pulls until the buffer is full and restarts at half: at worst one job per
    # read_ahead / 2 items, never one per item.
    assert submit.calls <= total // (read_ahead // 2) + 1


def test_an_item_produced_while_the_consumer_waits_is_handed_over_at_once() -> None:
    # The generator waits for the consumer to have item 0 before it makes item 1: a reader
    # that waited to fill a batch would hang here.
    got_first = threading.Event()

    def slow() -> Iterator[str]:
        yield "first"
        if not got_first.wait(WAIT):
            raise AssertionError("item 0 was held back")
        yield "second"

    async def main() -> list[str]:
        stream = sync_to_async_iter(slow(), read_ahead=64)
        first = await anext(stream)
        got_first.set()
        return [first, *[item async for item in stream]]

    assert run(main) == ["first", "second"]


def test_aclose_closes_the_generator_on_its_thread() -> None:
    events: list[str] = []
    paused = threading.Event()

    def generator() -> Iterator[int]:
        try:
            for i in range(1000):
                if i == 5:
                    paused.wait(WAIT)
                yield i
        finally:
            events.append(f"closed on {threading.current_thread().name}")

    async def main() -> None:
        stream = sync_to_async_iter(generator(), read_ahead=4)
        assert [await anext(stream), await anext(stream)] == [0, 1]
        paused.set()
        await stream.aclose()
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        await stream.aclose()  # again: nothing to do

    run(main)
    assert len(events) == 1
    assert events[0].startswith("closed on crossgate-sync-")


def test_aclose_while_the_worker_is_reading() -> None:
    inside = threading.Event()
    release = threading.Event()
    closed: list[str] = []

    def generator() -> Iterator[int]:
        try:
            yield 0
            inside.set()
            release.wait(WAIT)
            yield 1
            yield 2
        finally:
            closed.append("closed")

    async def main() -> None:
        stream = sync_to_async_iter(generator(), read_ahead=64)
        assert await anext(stream) == 0
        await asyncio.get_running_loop().run_in_executor(None, inside.wait, WAIT)
        closing = asyncio.ensure_future(stream.aclose())
        await asyncio.sleep(0)
        release.set()
        await closing

    run(main)
    assert closed == ["closed"]


def test_async_with_closes_and_a_never_started_source_is_closed_unread() -> None:
    body = Body([b"never", b"read"])

    async def main() -> None:
        async with sync_to_async_iter(body):
            pass

    run(main)
    assert body.iter_thread == ""  # not even iter()
    assert body.close_thread.startswith("crossgate-sync-")


def test_check_cancelled_stops_the_generator_after_aclose() -> None:
    stop_seen: list[str] = []
    reading = threading.Event()
    closing = threading.Event()

    def generator() -> Iterator[int]:
        yield 0
        reading.set()
        closing.wait(WAIT)
        try:
            check_cancelled()
        except asyncio.CancelledError:
            stop_seen.append("stopped")
            raise
        yield 1

    async def main() -> None:
        stream = sync_to_async_iter(generator())
        assert await anext(stream) == 0
        await asyncio.get_running_loop().run_in_executor(None, reading.wait, WAIT)
        task = asyncio.ensure_future(stream.aclose())
        await asyncio.sleep(0)
        closing.set()
        await task  # the stop it asked for is not an error

    run(main)
    assert stop_seen == ["stopped"]


def test_errors_arrive_after_the_items_before_them() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("broken source")

    async def main() -> list[int]:
        stream = sync_to_async_iter(failing())
        items = [await anext(stream), await anext(stream)]
        with pytest.raises(ValueError, match="broken source"):
            await anext(stream)
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        return items

    assert run(main) == [1, 2]


def test_a_failing_close_is_raised_by_aclose() -> None:
    class BadClose:
        def __iter__(self) -> Iterator[int]:
            return iter([1, 2, 3])

        def close(self) -> None:
            raise OSError("close failed")

    async def main() -> None:
        stream = sync_to_async_iter(BadClose())
        assert await anext(stream) == 1
        with pytest.raises(OSError, match="close failed"):
            await stream.aclose()

    run(main)


def test_cancelled_consumer_can_still_close() -> None:
    gate = threading.Event()
    inside = threading.Event()
    closed: list[str] = []

    def blocked() -> Iterator[int]:
        try:
            inside.set()
            gate.wait(WAIT)
            yield 1
            yield 2
        finally:
            closed.append("closed")

    async def main() -> None:
        stream = sync_to_async_iter(blocked())
        task = asyncio.ensure_future(anext(stream))
        await asyncio.get_running_loop().run_in_executor(None, inside.wait, WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        await stream.aclose()

    run(main)
    assert closed == ["closed"]


def test_options_context_and_validation() -> None:
    def names() -> Iterator[str]:
        yield threading.current_thread().name
        yield var.get()

    async def main() -> None:
        var.set("consumer's value")
        sensitive = [x async for x in sync_to_async_iter(names(), thread_sensitive=True)]
        assert sensitive[0].startswith("crossgate-sensitive-")
        assert sensitive[1] == "consumer's value"
        with ThreadPoolExecutor(1, thread_name_prefix="iter-pool") as executor:
            pooled = [x async for x in sync_to_async_iter(names(), executor=executor)]
        assert pooled[0].startswith("iter-pool")

    run(main)
    with pytest.raises(ValueError, match="at least 1"):
        sync_to_async_iter([], read_ahead=0)
    with pytest.raises(TypeError, match="not both"):
        sync_to_async_iter([], thread_sensitive=True, executor=ThreadPoolExecutor(1))


def test_an_executor_that_drops_the_reading_wakes_the_consumer() -> None:
    executor = ThreadPoolExecutor(1, thread_name_prefix="dropping-iter")
    started = threading.Event()
    release = threading.Event()

    def block() -> None:
        started.set()
        release.wait(WAIT)

    async def main() -> None:
        blocker = asyncio.ensure_future(
            sync_to_async(block, thread_sensitive=False, executor=executor)()
        )
        await asyncio.get_running_loop().run_in_executor(None, started.wait, WAIT)
        stream = sync_to_async_iter([1, 2], executor=executor)
        reading = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        executor.shutdown(wait=False, cancel_futures=True)
        release.set()
        with pytest.raises(ConcurrencyError, match="cancelled the reading"):
            await reading
        await blocker

    run(main)
    executor.shutdown()


# -- async iterable -> sync iterator --------------------------------------------------------------


async def numbers(count: int, closed: list[str] | None = None) -> AsyncIterator[int]:
    try:
        for i in range(count):
            await asyncio.sleep(0)
            yield i
    finally:
        if closed is not None:
            closed.append(threading.current_thread().name)


def test_async_items_arrive_in_order_on_the_persistent_loop() -> None:
    closed: list[str] = []
    assert list(async_to_sync_iter(numbers(100, closed))) == list(range(100))
    assert closed == ["crossgate-loop"]


def test_async_hand_offs_are_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    read_ahead = 50
    full = threading.Event()
    from crossgate.concurrency._pool import Waiter

    wakes = Counting(Waiter.wake)
    monkeypatch.setattr(Waiter, "wake", lambda self: wakes(self))

    async def produce() -> AsyncIterator[int]:
        for i in range(read_ahead):
            if i == read_ahead - 1:
                full.set()
            yield i

    stream = async_to_sync_iter(produce(), read_ahead=read_ahead)
    items = [next(stream)]
    # Hold this thread until the task read everything: the rest is there, ready.
    assert full.wait(WAIT)
    items += list(stream)
    assert items == list(range(read_ahead))
    assert wakes.calls <= 3


def test_async_reader_pauses_when_the_consumer_lags(monkeypatch: pytest.MonkeyPatch) -> None:
    read_ahead, total = 8, 200
    # Each resume is one hand-over to the loop (the stream is never closed here).
    resumes = Counting(loops.LoopTask.call_soon)
    monkeypatch.setattr(loops.LoopTask, "call_soon", lambda self, cb: resumes(self, cb))
    produced: list[int] = []

    async def produce() -> AsyncIterator[int]:
        for i in range(total):
            produced.append(i)
            yield i

    stream = async_to_sync_iter(produce(), read_ahead=read_ahead)
    for i, item in enumerate(stream):
        assert item == i
        # Never more than read_ahead items ahead of the consumer (plus the one in flight).
        assert len(produced) <= i + 1 + read_ahead + 1
    assert resumes.calls <= total // (read_ahead // 2) + 1


def test_close_cancels_the_reader_and_closes_the_source() -> None:
    closed: list[str] = []
    with async_to_sync_iter(numbers(10_000, closed), read_ahead=4) as stream:
        assert [next(stream), next(stream)] == [0, 1]
    assert closed == ["crossgate-loop"]
    with pytest.raises(StopIteration):
        next(stream)
    stream.close()  # again: nothing to do


def test_close_before_the_first_item_closes_the_source() -> None:
    class Source:
        def __init__(self) -> None:
            self.closed = False

        def __aiter__(self) -> AsyncIterator[int]:
            return numbers(3)

        async def aclose(self) -> None:
            self.closed = True

    source = Source()
    async_to_sync_iter(source).close()
    assert source.closed
    async_to_sync_iter(numbers(3)).close()  # an async generator: nothing to run


def test_async_errors_arrive_after_the_items_before_them() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise KeyError("async source broke")

    stream = async_to_sync_iter(failing())
    assert next(stream) == 1
    with pytest.raises(KeyError, match="async source broke"):
        next(stream)
    with pytest.raises(StopIteration):
        next(stream)


def test_a_failing_aclose_is_raised_by_close() -> None:
    class BadAclose:
        def __aiter__(self) -> BadAclose:
            return self

        async def __anext__(self) -> int:
            return 1

        async def aclose(self) -> None:
            raise OSError("aclose failed")

    stream = async_to_sync_iter(BadAclose())
    assert next(stream) == 1
    with pytest.raises(OSError, match="aclose failed"):
        stream.close()


def test_thread_sensitive_calls_of_the_reader_run_on_the_consumer() -> None:
    def ident() -> threading.Thread:
        return threading.current_thread()

    async def produce() -> AsyncIterator[threading.Thread]:
        for _ in range(3):
            yield await sync_to_async(ident, thread_sensitive=True)()

    assert list(async_to_sync_iter(produce())) == [threading.current_thread()] * 3


def test_async_iteration_on_a_loop_thread_is_refused() -> None:
    async def main() -> None:
        stream = async_to_sync_iter(numbers(1))
        with pytest.raises(ConcurrencyError, match="use async for"):
            next(stream)
        stream._closed = True  # never started: nothing to close

    run(main)
    with pytest.raises(ValueError, match="at least 1"):
        async_to_sync_iter(numbers(1), read_ahead=0)


def test_a_closed_loop_under_the_consumer_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loops, "POLL", 0.01)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    forever = threading.Thread(target=loop.run_forever, name="test-iter-loop")
    forever.start()
    outcome: list[BaseException] = []

    async def hangs() -> AsyncIterator[int]:
        started.set()
        await asyncio.Event().wait()
        yield 1

    def consumer() -> None:
        set_server_loop(loop)
        stream = async_to_sync_iter(hangs())
        try:
            next(stream)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=contextvars.copy_context().run, args=(consumer,))
    worker.start()
    assert started.wait(WAIT)
    loop.call_soon_threadsafe(loop.stop)
    forever.join(WAIT)
    loop.close()
    worker.join(WAIT)
    [error] = outcome
    assert isinstance(error, ConcurrencyError)
    assert "closed" in str(error)


def test_a_streaming_wsgi_response_from_an_async_generator() -> None:
    # The shape of a Django StreamingHttpResponse under WSGI: the WSGI server (here
    # WSGIToASGI) iterates and closes a sync iterator fed by async code on its own loop.
    loops_seen: list[asyncio.AbstractEventLoop] = []
    closed: list[str] = []

    async def chunks() -> AsyncIterator[bytes]:
        loops_seen.append(asyncio.get_running_loop())
        try:
            for i in range(5):
                yield f"chunk {i}\n".encode()
        finally:
            closed.append("closed")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return async_to_sync_iter(chunks())

    adapter = WSGIToASGI(validator(app))

    async def main() -> tuple[bytes, asyncio.AbstractEventLoop]:
        result = await call_http(adapter)
        return result.body, asyncio.get_running_loop()

    try:
        body, server = run(main)
    finally:
        adapter.close()
    assert body == b"".join(f"chunk {i}\n".encode() for i in range(5))
    assert loops_seen == [server]
    assert closed == ["closed"]
