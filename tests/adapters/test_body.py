"""WSGIToASGI request bodies: streaming with read-ahead, spooling, limits, clients that leave."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import pytest

from crossgate import ClientDisconnected, RequestTooLarge
from crossgate.adapters.wsgi_to_asgi import _exchange
from crossgate.testing import HTTPResult, call_http, http_scope
from crossgate.types import StartResponse, WSGIEnvironment
from tests.adapters.conftest import CountingApp, CountingReceive, MakeAdapter, drop, run

MiB = 1024 * 1024


def post(length: int | None = None, **kwargs: Any) -> dict[str, Any]:
    """A POST scope; without ``length``, chunked (the header HTTP/1.1 servers pass on)."""
    headers = [(b"content-type", b"application/octet-stream")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    else:
        headers.append((b"transfer-encoding", b"chunked"))
    return http_scope("POST", "/upload", headers=headers, **kwargs)


def digest_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Reads the body in 64 KiB pieces and answers its length and SHA-256."""
    digest = hashlib.sha256()
    total = 0
    while True:
        piece = environ["wsgi.input"].read(65536)
        if not piece:
            break
        digest.update(piece)
        total += len(piece)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{total} {digest.hexdigest()}".encode()]


def test_ten_mib_body_streams_without_a_hand_off_per_message(
    make_adapter: MakeAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = [bytes([i % 251]) * 65536 for i in range(160)]  # 10 MiB in 64 KiB messages
    expected = hashlib.sha256(b"".join(chunks)).hexdigest()
    wakes = 0
    real_call_soon = _exchange.WorkerExchange._call_soon

    def counting_call_soon(self: _exchange.WorkerExchange, waiter: Any) -> None:
        nonlocal wakes
        wakes += 1
        real_call_soon(self, waiter)

    # Every wake-up from the worker to the loop goes through WorkerExchange._call_soon.
    monkeypatch.setattr(_exchange.WorkerExchange, "_call_soon", counting_call_soon)
    adapter = make_adapter(digest_app)
    result = run(lambda: call_http(adapter, post(10 * MiB), body=chunks))
    assert result.text == f"{10 * MiB} {expected}"
    # The read-ahead is 1 MiB: the worker wakes the loop about once per 512 KiB consumed,
    # not once per 64 KiB message (160 here).
    assert wakes <= 40, f"{wakes} wake-ups for 160 body messages"


def test_chunked_body_without_content_length(make_adapter: MakeAdapter) -> None:
    chunks = [b"a" * 1000, b"b" * 3000, b"", b"c" * 10]
    result = run(lambda: call_http(make_adapter(digest_app), post(None), body=chunks))
    assert result.text.startswith("4010 ")


def test_read_methods(make_adapter: MakeAdapter) -> None:
    seen: dict[str, Any] = {}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        seen["read5"] = stream.read(5)
        seen["readline"] = stream.readline()
        seen["readline_limit"] = stream.readline(3)
        seen["rest_of_line"] = stream.readline()
        seen["lines"] = stream.readlines()
        seen["after_eof"] = stream.read(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    body = [b"hello", b" wor", b"ld\nabcdef", b"\nline1\nli", b"ne2\nlast"]
    run(lambda: call_http(make_adapter(app), post(), body=body))
    assert seen == {
        "read5": b"hello",
        "readline": b" world\n",
        "readline_limit": b"abc",
        "rest_of_line": b"def\n",
        "lines": [b"line1\n", b"line2\n", b"last"],
        "after_eof": b"",
    }


def test_wsgi_input_offers_only_the_stream_methods(make_adapter: MakeAdapter) -> None:
    # PEP 3333's input stream: read, readline, readlines, __iter__. The exchange behind it
    # (respond, finish, feed, ...) stays out of the app's reach.
    seen: dict[str, set[str]] = {}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen["public"] = {n for n in dir(environ["wsgi.input"]) if not n.startswith("_")}
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    # Unvalidated: the validator would show its own wrapper of the stream.
    run(lambda: call_http(make_adapter(app, validate=False), post(), body=[b"x"]))
    assert seen["public"] == {"read", "readline", "readlines"}


def test_read_all_and_iteration(make_adapter: MakeAdapter) -> None:
    # Not validated: wsgiref's validator forbids read() without a size, which PEP 3333
    # allows since wsgi.input_terminated streams end at the end of the body.
    seen: list[Any] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        stream = environ["wsgi.input"]
        seen.append(stream.read() if path == "/all" else list(stream))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    adapter = make_adapter(app, validate=False)
    body = [b"x\ny", b"\n", b"z"]

    async def main() -> None:
        await call_http(
            adapter,
            http_scope("POST", "/all", headers=[(b"transfer-encoding", b"chunked")]),
            body=body,
        )
        await call_http(
            adapter,
            http_scope("POST", "/iter", headers=[(b"transfer-encoding", b"chunked")]),
            body=body,
        )

    run(main)
    assert seen == [b"x\ny\nz", [b"x\n", b"y\n", b"z"]]


def test_readlines_hint(make_adapter: MakeAdapter) -> None:
    # As io.IOBase.readlines: stop once the lines read so far reach the hint.
    seen: list[list[bytes]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(environ["wsgi.input"].readlines(3))
        seen.append(environ["wsgi.input"].readlines(4))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    run(lambda: call_http(make_adapter(app), post(), body=[b"ab\ncd\nef\ngh\n"]))
    assert seen == [[b"ab\n"], [b"cd\n", b"ef\n"]]


def test_client_leaving_mid_upload_raises_client_disconnected(make_adapter: MakeAdapter) -> None:
    raised: list[BaseException] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            while environ["wsgi.input"].read(65536):
                pass
        except OSError as exc:
            raised.append(exc)
            raise
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"never"]

    result = run(
        lambda: call_http(
            make_adapter(app), post(1000), body=[b"a" * 100, b"b" * 100], body_complete=False
        )
    )
    assert len(raised) == 1
    assert isinstance(raised[0], ClientDisconnected)
    assert result.status is None  # nothing was sent to a client that is gone


def test_disconnect_before_the_body_starts_never_runs_the_app(make_adapter: MakeAdapter) -> None:
    app = CountingApp()
    result = run(lambda: call_http(make_adapter(app), post(10), body=[], body_complete=False))
    assert app.calls == 0
    assert result.status is None


def test_max_body_size_content_length_rejected_before_the_app_runs(
    make_adapter: MakeAdapter,
) -> None:
    app = CountingApp()
    adapter = make_adapter(app, max_body_size=100)
    result = run(lambda: call_http(adapter, post(101), body=b"x" * 101))
    assert result.status == 413
    assert app.calls == 0


def test_max_body_size_streamed_body_raises_in_read(make_adapter: MakeAdapter) -> None:
    raised: list[BaseException] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            while environ["wsgi.input"].read(1000):
                pass
        except RequestTooLarge as exc:
            raised.append(exc)
            raise
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    adapter = make_adapter(app, max_body_size=2500)
    result = run(lambda: call_http(adapter, post(None), body=[b"x" * 1000] * 5))
    assert result.status == 413
    assert raised, "the app's read must raise once the body passes the limit"
    assert b"larger than 2500 bytes" in result.body


def test_max_body_size_first_message_over_the_limit(make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(digest_app, max_body_size=10)
    result = run(lambda: call_http(adapter, post(None), body=[b"x" * 11, b"y"]))
    assert result.status == 413


def test_spool_reads_the_whole_body_before_the_app_starts(make_adapter: MakeAdapter) -> None:
    started = False
    order: list[str] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        nonlocal started
        started = True
        order.append("app")
        return digest_app(environ, start_response)

    chunks = [b"s" * 50_000] * 4

    # receive() records whether the app had started when each chunk was handed over.
    async def main_with_probe() -> HTTPResult:
        adapter = make_adapter(app, request_body="spool", spool_threshold=64_000)
        index = 0

        async def receive() -> MutableMapping[str, Any]:
            nonlocal index
            if index < len(chunks):
                order.append(f"chunk{index}:{'started' if started else 'waiting'}")
                index += 1
                return {"type": "http.request", "body": chunks[index - 1], "more_body": index < 4}
            await asyncio.Event().wait()  # the client stays; the adapter cancels this wait
            raise AssertionError("unreachable")

        sent: list[Mapping[str, Any]] = []

        async def send(message: Mapping[str, Any]) -> None:
            sent.append(message)

        await adapter(post(200_000), receive, send)
        body = b"".join(m.get("body", b"") for m in sent[1:])
        return HTTPResult(status=sent[0]["status"], body=body)

    result = run(main_with_probe)
    assert result.status == 200
    assert result.body.startswith(b"200000 ")
    assert order[:4] == [f"chunk{i}:waiting" for i in range(4)]
    assert order[4] == "app"


def test_spool_rolls_over_to_a_temporary_file(
    make_adapter: MakeAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    rolled: list[bool] = []
    real = tempfile.SpooledTemporaryFile

    def spy(*args: Any, **kwargs: Any) -> Any:
        spooled = real(*args, **kwargs)
        rolled.append(False)
        original = spooled.rollover

        def rollover() -> None:
            rolled[-1] = True
            original()

        spooled.rollover = rollover  # type: ignore[method-assign]
        return spooled

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", spy)
    adapter = make_adapter(digest_app, request_body="spool", spool_threshold=1000)

    async def main() -> list[HTTPResult]:
        return [
            await call_http(adapter, post(500), body=b"a" * 500),
            await call_http(adapter, post(5000), body=[b"b" * 2500] * 2),
        ]

    small, large = run(main)
    assert small.text.startswith("500 ")
    assert large.text.startswith("5000 ")
    assert rolled == [False, True]


def test_spool_limits_and_disconnect(make_adapter: MakeAdapter) -> None:
    app = CountingApp()
    adapter = make_adapter(app, request_body="spool", max_body_size=100)

    async def main() -> list[HTTPResult]:
        return [
            await call_http(adapter, post(None), body=[b"x" * 60] * 2),
            await call_http(adapter, post(None), body=[b"x" * 60], body_complete=False),
        ]

    too_large, gone = run(main)
    assert too_large.status == 413
    assert gone.status is None
    assert app.calls == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("workers", 0),
        ("request_body", "buffer"),
        ("read_ahead", 0),
        ("send_buffer", 0),
        ("spool_threshold", 0),
        ("max_body_size", -1),
        ("queue_timeout", 0),
    ],
)
def test_invalid_options(make_adapter: MakeAdapter, option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=option):
        make_adapter(digest_app, **{option: value})


# Message sizes that straddle the 1,000-byte limit every way: far below, just below, at, just
# past it, and the whole body at once.
_LIMIT_SIZES = [1, 7, 100, 333, 512, 999, 1000, 1001, 1024, 2000]


def _limit_reader(read_size: int, got: list[int]) -> Any:
    """An app that reads ``read_size`` at a time, records each piece's size, answers 200."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        while True:
            piece = environ["wsgi.input"].read(read_size)
            if not piece:
                break
            got.append(len(piece))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(sum(got)).encode()]

    return app


@pytest.mark.parametrize("read_size", [-1, 1, 100, 1000, 4096])
@pytest.mark.parametrize("message_size", _LIMIT_SIZES)
def test_max_body_size_no_byte_past_the_limit_reaches_the_app(
    make_adapter: MakeAdapter, message_size: int, read_size: int
) -> None:
    # issue 14 item 6: a chunked body (no Content-Length) is counted as it arrives; the app
    # could read up to a whole message past the limit before read() raised.
    got: list[int] = []
    adapter = make_adapter(_limit_reader(read_size, got), max_body_size=1000)
    body = b"x" * 2000
    messages = [body[i : i + message_size] for i in range(0, len(body), message_size)]
    result = run(lambda: call_http(adapter, post(None), body=messages))
    assert sum(got) <= 1000
    assert result.status == 413


@pytest.mark.parametrize("read_size", [-1, 1, 1000, 4096])
@pytest.mark.parametrize("message_size", [1, 100, 333, 999, 1000])
def test_max_body_size_a_body_of_exactly_the_limit_passes(
    make_adapter: MakeAdapter, message_size: int, read_size: int
) -> None:
    got: list[int] = []
    adapter = make_adapter(_limit_reader(read_size, got), max_body_size=1000)
    body = b"x" * 1000
    messages = [body[i : i + message_size] for i in range(0, len(body), message_size)]
    result = run(lambda: call_http(adapter, post(None), body=messages))
    assert result.status == 200
    assert result.text == "1000"


def _content_length_reader(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """Reads the body as Django does: exactly CONTENT_LENGTH bytes, nothing when it is unset."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ.get('CONTENT_LENGTH')!r} {len(body)}".encode()]


@pytest.mark.parametrize("threshold", [10, 1 * MiB])  # on disk / in memory
def test_spool_sets_content_length_of_a_chunked_body(
    make_adapter: MakeAdapter, threshold: int
) -> None:
    # issue 14 item 8: the spooled body's size is known before the app runs, so an app that
    # reads CONTENT_LENGTH bytes and ignores wsgi.input_terminated (Django) gets the body.
    adapter = make_adapter(_content_length_reader, request_body="spool", spool_threshold=threshold)
    result = run(lambda: call_http(adapter, post(None), body=[b"a" * 700, b"b" * 300, b""]))
    assert result.text == "'1000' 1000"


def test_spool_sets_content_length_of_an_empty_chunked_body(make_adapter: MakeAdapter) -> None:
    adapter = make_adapter(_content_length_reader, request_body="spool")
    result = run(lambda: call_http(adapter, post(None), body=[b""]))
    assert result.text == "'0' 0"


def test_stream_mode_leaves_a_chunked_body_without_content_length(
    make_adapter: MakeAdapter,
) -> None:
    # Stream mode cannot know the size before the app runs (documented): no CONTENT_LENGTH.
    adapter = make_adapter(_content_length_reader)
    result = run(lambda: call_http(adapter, post(None), body=[b"a" * 700, b"b" * 300]))
    assert result.text == "None 0"


@pytest.mark.parametrize(("version", "reads"), [("1.1", 0), ("1.0", 0), ("2", 1)])
def test_an_http1_request_without_framing_headers_has_no_body_to_wait_for(
    make_adapter: MakeAdapter, version: str, reads: int
) -> None:
    # RFC 9112 section 6.3: an HTTP/1 request with neither Content-Length nor
    # Transfer-Encoding has no body, so its http.request message is never awaited. HTTP/2
    # frames bodies without either header: there, the first message is read.
    seen: list[bytes] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(environ["wsgi.input"].read(100))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    adapter = make_adapter(app)
    receive = CountingReceive()

    async def main() -> None:
        await adapter(http_scope(http_version=version), receive, drop)

    run(main)
    assert seen == [b""]
    assert receive.calls == reads
