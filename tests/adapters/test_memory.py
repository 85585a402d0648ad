"""WSGIToASGI and memory: request bodies let go of as soon as nobody can read them.

Issue 14 item 9: a storm of clients that announce a large body, send part of it and leave took
a uvicorn worker from 50 to 298 MB. These tests check the mechanisms, not figures (those are in
``bench/upload_storm.py``): no reference cycle keeps a finished request's body alive, a request
waiting for a worker reads no body, the read-ahead of all requests shares one budget, and the
C heap is trimmed after a burst of bodies.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

import crossgate.adapters.wsgi_to_asgi as w2a_module
from crossgate import ClientDisconnected, WSGIToASGI
from crossgate.adapters.wsgi_to_asgi import MemoryReleaser
from crossgate.testing import HTTPResult, call_http, http_scope
from crossgate.types import Message, StartResponse, WSGIEnvironment
from tests.adapters.conftest import MakeAdapter, run

KiB = 1024
EVENT_TIMEOUT = 10.0


class Counted(bytes):
    """A body chunk that counts the instances alive: ``bytes`` cannot be weakly referenced."""

    live = 0

    def __new__(cls, data: bytes) -> Counted:
        Counted.live += 1
        return super().__new__(cls, data)

    def __del__(self) -> None:
        Counted.live -= 1


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Only reference counting frees memory: what a cycle holds stays held."""
    gc.collect()
    Counted.live = 0
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def post(length: int | None = 10_000_000) -> dict[str, Any]:
    headers = [(b"content-type", b"application/octet-stream")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return http_scope("POST", "/upload", headers=headers)


def reader(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Reads the body in 64 KiB pieces, keeping the last one, as upload handlers do."""
    piece = b""
    total = 0
    while True:
        piece = environ["wsgi.input"].read(64 * KiB)
        if not piece:
            break
        total += len(piece)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(total).encode()]


def chunks(count: int, size: int = 64 * KiB) -> list[bytes]:
    return [Counted(b"x" * size) for _ in range(count)]


def budget_used(adapter: WSGIToASGI) -> int:
    """The read-ahead bytes the adapter counts for the requests on the running loop."""
    shared = adapter._per_loop.get(asyncio.get_running_loop())
    return 0 if shared is None else shared[0].used


def call_and_count(adapter: WSGIToASGI, **call: Any) -> tuple[HTTPResult, int]:
    """One request; what the client saw, and the budget still counted once it is over."""

    async def main() -> tuple[HTTPResult, int]:
        result = await call_http(adapter, **call)
        return result, budget_used(adapter)

    return run(main)


def test_an_abandoned_upload_leaves_no_body_bytes_referenced(
    make_adapter: MakeAdapter, no_gc: None
) -> None:
    # The app's ClientDisconnected holds the frames that hold the request; the adapter kept
    # the exception in one of those frames: a cycle that only the cyclic GC could free.
    # validate=False: wsgiref's validator insists on exactly bytes, and Counted is a subclass.
    adapter = make_adapter(reader, validate=False)
    result, used = call_and_count(adapter, scope=post(), body=chunks(40), body_complete=False)
    assert result.status is None
    assert Counted.live == 0
    assert used == 0


@pytest.mark.parametrize("complete", [True, False])
def test_an_app_failing_mid_body_leaves_no_body_bytes_referenced(
    make_adapter: MakeAdapter, no_gc: None, complete: bool
) -> None:
    def failing(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["wsgi.input"].read(100 * KiB)
        raise ValueError("the app gave up")

    # raise_app_exceptions=False: raised on, the app's error reaches the test driver, whose
    # frames (holding the body it sent) its traceback keeps, inside asyncio's own wait_for
    # cycle; what this test checks is that the adapter itself keeps nothing.
    adapter = make_adapter(failing, validate=False, raise_app_exceptions=False)
    result, used = call_and_count(adapter, scope=post(), body=chunks(40), body_complete=complete)
    assert result.status in (500, None)
    assert Counted.live == 0
    assert used == 0


def test_an_app_answering_without_reading_gives_the_budget_back(
    make_adapter: MakeAdapter,
) -> None:
    def ignores_body(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ignored"]

    adapter = make_adapter(ignores_body)
    result, used = call_and_count(adapter, scope=post(40 * 64 * KiB), body=chunks(40))
    assert result.text == "ignored"
    assert used == 0


class _Upload:
    """An ASGI client side whose receive() counts how often the adapter asked for the body."""

    def __init__(self, pieces: list[bytes], *, leave: bool = False) -> None:
        self.pieces = pieces
        self.leave = leave
        self.asked = 0
        self.sent: list[Message] = []
        self.done = asyncio.Event()

    async def receive(self) -> Message:
        self.asked += 1
        if self.pieces:
            piece = self.pieces.pop(0)
            more = bool(self.pieces) or self.leave
            return {"type": "http.request", "body": piece, "more_body": more}
        if not self.leave:
            await self.done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(dict(message))
        if message["type"] == "http.response.body" and not message.get("more_body"):
            self.done.set()


async def _wait_for(event: threading.Event) -> None:
    for _ in range(int(EVENT_TIMEOUT / 0.01)):
        if event.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the app never got there")


async def _spin(turns: int = 50) -> None:
    """Let the loop run whatever the adapter scheduled on it (no thread is involved)."""
    for _ in range(turns):
        await asyncio.sleep(0)


def test_a_request_waiting_for_a_worker_reads_no_body(make_adapter: MakeAdapter) -> None:
    # A queued upload read ahead (and let the server refill its buffer) for as long as it
    # waited: 500 queued clients held hundreds of MiB.
    busy = threading.Event()
    release = threading.Event()

    def blocking(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/block":
            busy.set()
            release.wait(EVENT_TIMEOUT)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"done"]
        return reader(environ, start_response)

    adapter = make_adapter(blocking, workers=1)

    async def main() -> tuple[int, list[Message], HTTPResult]:
        first = asyncio.ensure_future(call_http(adapter, http_scope("GET", "/block")))
        await _wait_for(busy)
        upload = _Upload([b"u" * (64 * KiB) for _ in range(20)])
        second = asyncio.ensure_future(adapter(post(20 * 64 * KiB), upload.receive, upload.send))
        await _spin()
        asked_while_queued = upload.asked
        release.set()
        await second
        return asked_while_queued, upload.sent, await first

    asked, sent, first = run(main)
    assert asked == 0
    assert first.text == "done"
    assert sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == str(20 * 64 * KiB).encode()


def test_read_ahead_stops_at_the_shared_budget(make_adapter: MakeAdapter) -> None:
    started = threading.Event()
    release = threading.Event()

    def slow_reader(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started.set()
        release.wait(EVENT_TIMEOUT)
        return reader(environ, start_response)

    adapter = make_adapter(slow_reader, read_ahead=1024 * KiB, read_ahead_budget=100 * KiB)

    async def main() -> tuple[int, list[Message], int]:
        upload = _Upload([b"u" * (10 * KiB) for _ in range(200)])
        task = asyncio.ensure_future(adapter(post(200 * 10 * KiB), upload.receive, upload.send))
        await _wait_for(started)
        await _spin()
        buffered = budget_used(adapter)
        release.set()
        await task
        return buffered, upload.sent, budget_used(adapter)

    buffered, sent, used = run(main)
    # The read-ahead of this one request (1 MiB) would have read 100 messages.
    assert 100 * KiB <= buffered <= 110 * KiB
    assert b"".join(m.get("body", b"") for m in sent[1:]) == str(200 * 10 * KiB).encode()
    assert used == 0


def test_a_disconnect_drops_the_bytes_read_ahead_at_once(make_adapter: MakeAdapter) -> None:
    started = threading.Event()
    release = threading.Event()
    raised: list[BaseException] = []

    def slow_reader(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started.set()
        release.wait(EVENT_TIMEOUT)
        try:
            environ["wsgi.input"].read(1)
        except ClientDisconnected as exc:
            raised.append(exc)
            raise
        raise AssertionError("read() returned after the client left mid-body")

    adapter = make_adapter(slow_reader)

    async def main() -> int:
        upload = _Upload([b"u" * (10 * KiB) for _ in range(20)], leave=True)
        task = asyncio.ensure_future(adapter(post(), upload.receive, upload.send))
        await _wait_for(started)
        await _spin()
        buffered_after_leaving = budget_used(adapter)
        release.set()
        await task
        return buffered_after_leaving

    assert run(main) == 0
    assert raised, "the app's read must raise once the client left mid-body"


# -- the C heap trim ------------------------------------------------------------------------


class _FakeTrim:
    def __init__(self) -> None:
        self.calls: list[int] = []
        self.called = threading.Event()

    def __call__(self, pad: int) -> int:
        self.calls.append(pad)
        self.called.set()
        return 1


def test_the_heap_is_trimmed_once_after_a_burst_of_bodies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(w2a_module, "TRIM_DELAY", 0.0)
    trim = _FakeTrim()
    releaser = MemoryReleaser(trim)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        releaser.note(loop, w2a_module.TRIM_AFTER_BYTES - 1)
        await _spin()
        assert not trim.calls
        releaser.note(loop, 1)
        releaser.note(loop, w2a_module.TRIM_AFTER_BYTES)  # the same burst: one trim
        await _wait_for(trim.called)

    run(main)
    assert trim.calls == [0]
    assert releaser.pending == 0


def test_a_request_without_body_bytes_leaves_the_releaser_alone() -> None:
    releaser = MemoryReleaser(_FakeTrim())

    async def main() -> float:
        loop = asyncio.get_running_loop()
        releaser.note(loop, 0)
        return releaser._last

    assert run(main) == 0.0  # not "body bytes went through now": a burst's quiet time holds
    assert releaser.pending == 0


def test_an_adapter_trims_after_a_burst_of_uploads(
    make_adapter: MakeAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(w2a_module, "TRIM_AFTER_BYTES", 256 * KiB)
    monkeypatch.setattr(w2a_module, "TRIM_DELAY", 0.0)
    trim = _FakeTrim()
    adapter = make_adapter(reader)
    adapter._releaser = MemoryReleaser(trim)

    async def main() -> None:
        await call_http(adapter, post(512 * KiB), body=[b"x" * (64 * KiB)] * 8)
        await _wait_for(trim.called)

    run(main)
    assert trim.calls == [0]


def test_release_memory_false_never_trims(make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(reader, release_memory=False)

    async def main() -> None:
        adapter._releaser.note(asyncio.get_running_loop(), 2 * w2a_module.TRIM_AFTER_BYTES)

    run(main)
    assert adapter._releaser.pending == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_malloc_trim_is_found_on_linux() -> None:
    assert w2a_module._find_malloc_trim() is not None
    assert w2a_module._MALLOC_TRIM is not None  # what an adapter with release_memory=True uses


def test_a_trim_waits_for_the_traffic_to_pause_but_not_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(w2a_module, "TRIM_DELAY", 3600.0)  # the timers never fire on their own
    trim = _FakeTrim()
    releaser = MemoryReleaser(trim)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        releaser.note(loop, w2a_module.TRIM_AFTER_BYTES)
        # Bodies still going through: the due trim waits for a pause.
        releaser._check(loop, trim)
        await _spin()
        assert not trim.calls
        assert releaser.pending == w2a_module.TRIM_AFTER_BYTES
        # Traffic that never pauses: the trim runs once it has waited TRIM_MAX_WAIT.
        monkeypatch.setattr(w2a_module, "TRIM_MAX_WAIT", 0.0)
        releaser._check(loop, trim)
        await _wait_for(trim.called)
        # The timers still scheduled die with the loop.

    run(main)
    assert trim.calls == [0]
    assert releaser.pending == 0


@pytest.mark.parametrize("kind", ["list", "generator", "upload", "disconnect"])
def test_a_request_leaves_no_reference_cycle(make_adapter: MakeAdapter, kind: str) -> None:
    # What only the cyclic GC frees costs every request a share of the collections it
    # triggers, and keeps the request's objects alive until then.
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["wsgi.input"].read(100)
        assert not environ["crossgate.disconnected"].is_set() or kind == "disconnect"
        start_response("200 OK", [("Content-Type", "text/plain")])
        if kind == "list":
            return [b"hello"]
        return iter([b"hel", b"lo"])

    adapter = make_adapter(app)
    call: dict[str, Any] = {}
    if kind == "upload":
        call = {"scope": post(20), "body": [b"x" * 10, b"x" * 10]}
    elif kind == "disconnect":
        call = {"scope": post(20), "body": [b"x" * 10], "body_complete": False}

    async def main() -> None:
        for _ in range(5):
            await call_http(adapter, **call)

    run(main)  # the adapter's pool and the loop's own objects exist before the count
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run(main)
        gc.collect()
        ours = [o for o in gc.garbage if type(o).__module__.startswith("crossgate.")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert ours == []
