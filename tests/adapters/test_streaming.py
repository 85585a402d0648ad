"""WSGIToASGI streaming: back-pressure in bytes, coalescing, and clients that leave."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

import pytest

from crossgate.exceptions import CrossgateError
from crossgate.testing import HTTPResult, call_http, http_scope
from crossgate.types import StartResponse, WSGIEnvironment
from tests.adapters.conftest import CountingReceive, MakeAdapter, drop, run


def test_app_never_runs_more_than_send_buffer_bytes_ahead(make_adapter: MakeAdapter) -> None:
    produced = 0
    delivered = 0
    worst_lead = 0
    chunk = 4096

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        nonlocal produced, worst_lead
        start_response("200 OK", [("Content-Type", "text/plain")])
        for _ in range(200):
            # Everything produced before this chunk, minus what the client has: the lead.
            worst_lead = max(worst_lead, produced - delivered)
            produced += chunk
            yield b"x" * chunk

    adapter = make_adapter(app, send_buffer=32 * 1024)

    async def receive() -> MutableMapping[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal delivered
        await asyncio.sleep(0.001)  # a slow client
        delivered += len(message.get("body", b""))

    async def main() -> None:
        first = True

        async def first_receive() -> MutableMapping[str, Any]:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b"", "more_body": False}
            return await receive()

        await adapter(http_scope(), first_receive, send)

    run(main)
    assert delivered == 200 * chunk
    # The worker blocks once the unsent bytes reach send_buffer; one chunk may be in hand.
    assert worst_lead <= 32 * 1024 + chunk


def test_small_chunks_are_coalesced_for_a_slow_client(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for _ in range(256):
            yield b"y" * 4096

    adapter = make_adapter(app)
    result = run(lambda: call_http(adapter, send_delay=0.002))
    bodies = [m for m in result.messages if m["type"] == "http.response.body"]
    assert result.body == b"y" * (256 * 4096)
    assert len(bodies) < 256 // 4, f"{len(bodies)} body messages for 256 chunks"


def test_streamed_response_arrives_in_pieces(make_adapter: MakeAdapter) -> None:
    # Each piece waits for the client to have the previous one: the response truly streams.
    got_first = threading.Event()
    total: list[int] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        assert got_first.wait(10), "the first piece never reached the client"
        yield b"second"

    adapter = make_adapter(app)

    async def main() -> HTTPResult:
        result = HTTPResult()
        done = asyncio.Event()

        async def receive() -> MutableMapping[str, Any]:
            if not total:
                total.append(0)
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            result.messages.append(message)
            if message.get("body") == b"first":
                got_first.set()
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        await adapter(http_scope(), receive, send)
        return result

    result = run(main)
    bodies = [m["body"] for m in result.messages if m["type"] == "http.response.body"]
    assert bodies[0] == b"first"
    assert b"".join(bodies) == b"firstsecond"


def test_endless_sse_generator_is_closed_when_the_client_leaves(make_adapter: MakeAdapter) -> None:
    closed = threading.Event()
    after_disconnect: list[int] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        gone = environ["crossgate.disconnected"]
        count = 0
        try:
            while True:
                count += 1
                if gone.is_set():
                    after_disconnect.append(count)
                yield f"data: {count}\n\n".encode()
                time.sleep(0.1)
        finally:
            closed.set()

    adapter = make_adapter(app)
    result = run(lambda: call_http(adapter, disconnect_after_bytes=20))
    assert closed.is_set(), "the generator must be closed once the adapter returns"
    assert result.disconnected
    # Structural, not timed: at most one more event is produced after the client left.
    assert len(after_disconnect) <= 1


def test_disconnected_event_lets_a_busy_app_stop(make_adapter: MakeAdapter) -> None:
    stopped = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        gone: threading.Event = environ["crossgate.disconnected"]
        # A long computation that polls instead of yielding.
        if gone.wait(10):
            stopped.set()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"too late"]

    adapter = make_adapter(app)
    result = run(lambda: call_http(adapter, disconnect_after=0.05))
    assert stopped.is_set()
    assert result.status is None  # nothing is sent to a client that left


def test_disconnected_event_is_a_threading_event_only_crossgate_sets(
    make_adapter: MakeAdapter,
) -> None:
    seen: dict[str, object] = {}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        gone = environ["crossgate.disconnected"]
        seen["event"] = isinstance(gone, threading.Event)
        seen["before"] = (gone.is_set(), gone.wait(0.01), repr(gone))
        for change in (gone.set, gone.clear):
            try:
                change()
            except CrossgateError as exc:
                seen[change.__name__] = str(exc)
        seen["after"] = (gone.wait(10), gone.is_set(), repr(gone))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"too late"]

    adapter = make_adapter(app)
    run(lambda: call_http(adapter, disconnect_after=0.05))
    assert seen["event"] is True
    assert seen["before"] == (False, False, "<crossgate.disconnected: unset>")
    assert "set by crossgate" in str(seen["set"])
    assert "cannot be cleared" in str(seen["clear"])
    assert seen["after"] == (True, True, "<crossgate.disconnected: set>")


def test_send_raising_stops_the_app(make_adapter: MakeAdapter) -> None:
    closed = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            for _ in range(10_000):
                yield b"z" * 1024
                time.sleep(0.001)
        finally:
            closed.set()

    adapter = make_adapter(app, send_buffer=1)
    calls = 0

    async def main() -> None:
        first = True

        async def receive() -> MutableMapping[str, Any]:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal calls
            calls += 1
            if calls > 3:
                # Without a receive() reporting it, the broken connection shows in send().
                raise ConnectionResetError("peer reset")

        await adapter(http_scope(), receive, send)  # OSError: not re-raised

    run(main)
    assert closed.is_set()
    assert calls == 4


def test_send_raising_something_else_is_reraised(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"a"

    adapter = make_adapter(app)

    async def main() -> BaseException | None:
        async def receive() -> MutableMapping[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            raise RuntimeError("server bug")

        try:
            await adapter(http_scope(), receive, send)
        except RuntimeError as exc:
            return exc
        return None

    error = run(main)
    assert isinstance(error, RuntimeError)


def test_cancelled_request_stops_the_worker(make_adapter: MakeAdapter) -> None:
    closed = threading.Event()
    started = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        started.set()
        try:
            while True:
                yield b"tick"
                time.sleep(0.01)
        finally:
            closed.set()

    adapter = make_adapter(app, send_buffer=1)

    async def main() -> None:
        task = asyncio.ensure_future(call_http(adapter, send_delay=0.01))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        while not closed.is_set():  # bounded by the test timeout
            await asyncio.sleep(0.01)

    run(main)
    assert closed.is_set()


def test_a_quick_response_reads_no_more_than_its_body(make_adapter: MakeAdapter) -> None:
    # The task that watches for http.disconnect starts only once a response takes WATCH_DELAY:
    # a hello world is over before, and never calls receive() again for it.
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    adapter = make_adapter(app)

    async def main() -> list[MutableMapping[str, Any]]:
        sent: list[MutableMapping[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        for _ in range(20):
            receive = CountingReceive()
            await adapter(http_scope(http_version="2"), receive, send)
            assert receive.calls == 1
        return sent

    sent = run(main)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200] * 20
    assert b"".join(m["body"] for m in sent if m["type"] == "http.response.body") == b"hello" * 20


def test_a_slow_app_still_learns_the_client_left(make_adapter: MakeAdapter) -> None:
    waited: list[bool] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        waited.append(environ["crossgate.disconnected"].wait(10))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"late"]

    adapter = make_adapter(app)

    async def main() -> float:
        started = time.monotonic()
        await adapter(http_scope(), CountingReceive(gone=True), drop)
        return time.monotonic() - started

    elapsed = run(main)
    assert waited == [True]
    assert elapsed < 5


def test_requests_on_one_loop_share_one_watch_timer(
    make_adapter: MakeAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hi"]

    adapter = make_adapter(app)
    timers = 0

    async def main() -> None:
        nonlocal timers
        loop = asyncio.get_running_loop()
        real = loop.call_later

        def counting(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
            nonlocal timers
            if args == (loop,):  # the adapter's (call_http's own timeouts pass none)
                timers += 1
            return real(delay, callback, *args)

        monkeypatch.setattr(loop, "call_later", counting)
        await asyncio.gather(*(call_http(adapter) for _ in range(40)))
        monkeypatch.undo()

    run(main)
    assert 1 <= timers <= 3  # a tick while they run may schedule the next; not one per request
