"""`BodyLimit` / `WSGIBodyLimit`: 413 before the app runs, or the moment a body passes the limit.

The shared cases run on both sides through `tests.middleware._sides`; side-specific behaviour
(ASGI: a response already started, an error page replaced; WSGI: the ``wsgi.input`` wrapper and
``exc_info``) follows, and then the real frameworks (Starlette, Flask) that turn the error into
a 500 of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import logging
import sys
from collections.abc import Iterable
from typing import Any

import pytest
from flask import Flask
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from crossgate.exceptions import PeerProtocolError, RequestTooLarge, ResponseAborted
from crossgate.middleware.body_limit import BodyLimit, LimitedInput, WSGIBodyLimit
from crossgate.sansio.body_limit import BodyMeter
from crossgate.testing import call_http, call_lifespan, call_websocket, http_scope
from crossgate.types import ASGIReceive, ASGISend, Message, StartResponse, WSGIEnvironment
from tests.middleware._e_apps import call_wsgi, make_environ
from tests.middleware._sides import Request, run

PAIR = (BodyLimit, WSGIBodyLimit)
LIMIT = 10


# A body of unknown length, as an HTTP/1 server reports a chunked upload.
_CHUNKED = (b"transfer-encoding", b"chunked")


def _cl(n: int | str) -> tuple[bytes, bytes]:
    return (b"content-length", str(n).encode())


# --- both sides ---------------------------------------------------------------------------------


def test_content_length_over_the_limit_is_refused_before_the_app_runs(
    side: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "crossgate.middleware"):
        outcome = run(
            side, PAIR, Request("POST", body=b"x" * 11, headers=(_cl(11),)), max_body_size=LIMIT
        )
    assert outcome.status == 413
    assert outcome.seen is None  # the app was never called
    assert "larger than 10 bytes" in outcome.text
    assert "413" in caplog.text


@pytest.mark.parametrize("declared", [True, False])
def test_a_body_at_the_limit_passes_whole(side: str, declared: bool) -> None:
    body = (b"x" * 4, b"y" * 6)
    headers = (_cl(10),) if declared else ()
    outcome = run(side, PAIR, Request("POST", body=body, headers=headers), max_body_size=LIMIT)
    assert outcome.status == 200
    assert outcome.seen is not None
    assert outcome.seen.body == b"xxxxyyyyyy"


def test_a_streamed_body_passing_the_limit_is_a_413(side: str) -> None:
    # No Content-Length (chunked): counted as it arrives.
    outcome = run(side, PAIR, Request("POST", body=(b"x" * 8, b"x" * 8)), max_body_size=LIMIT)
    assert outcome.status == 413
    assert outcome.seen is None  # the app never got to answer on a truncated body


def test_limit_zero_allows_only_empty_bodies(side: str) -> None:
    assert run(side, PAIR, Request("POST", body=b""), max_body_size=0).status == 200
    assert run(side, PAIR, Request("POST", body=b"x"), max_body_size=0).status == 413


def test_content_length_that_lies_larger_than_the_body_is_a_400(side: str) -> None:
    # Content-Length 10, 4 bytes arrive and the body ends: the app must not take 4 bytes for
    # the whole body.
    request = Request("POST", body=b"abcd", headers=(_cl(10),))
    outcome = run(side, PAIR, request, max_body_size=100)
    assert outcome.status == 400
    assert "ended after 4 of the 10 bytes" in outcome.text
    assert outcome.seen is None


def test_gzip_bomb_in_a_request_reaches_the_app_byte_for_byte(side: str) -> None:
    # 10 MiB of zeros compress to about 10 KiB. The middleware never decompresses requests, so
    # the limit applies to the bytes on the wire and the app gets exactly those.
    bomb = gzip.compress(b"\0" * (10 * 1024 * 1024))
    headers = ((b"content-encoding", b"gzip"), _cl(len(bomb)))
    outcome = run(side, PAIR, Request("POST", body=bomb, headers=headers), max_body_size=64 * 1024)
    assert outcome.status == 200
    assert outcome.seen is not None
    assert outcome.seen.body == bomb


def test_invalid_options() -> None:
    for bad in (-1, 1.5, "10", True):
        with pytest.raises(ValueError, match="max_body_size"):
            BodyLimit(_never_asgi, max_body_size=bad)  # type: ignore[arg-type]  # on purpose
        with pytest.raises(ValueError, match="max_body_size"):
            WSGIBodyLimit(_never_wsgi, max_body_size=bad)  # type: ignore[arg-type]  # on purpose


async def _never_asgi(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
    raise AssertionError("the app must not be called")


def _never_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    raise AssertionError("the app must not be called")


# --- ASGI ---------------------------------------------------------------------------------------


def test_asgi_invalid_content_length_is_a_400() -> None:
    scope = http_scope("POST", headers=[_cl("12abc")])
    result = asyncio.run(call_http(BodyLimit(_never_asgi, max_body_size=LIMIT), scope))
    assert result.status == 400
    assert "invalid Content-Length" in result.text


def test_asgi_content_length_that_lies_smaller_is_a_400() -> None:
    # An ASGI server frames the body itself, so more bytes than Content-Length is a broken
    # framing: what arrives is counted, and the app never sees bytes past the length.
    request = Request("POST", body=(b"abcd", b"efgh"), headers=(_cl(4),))
    outcome = run("asgi", PAIR, request, max_body_size=100)
    assert outcome.status == 400
    assert "longer than its Content-Length of 4" in outcome.text


class _Catcher:
    """An ASGI app that reads its body and records how the read ended."""

    def __init__(self, *, answer: bool = True) -> None:
        self.received: list[bytes] = []
        self.error: BaseException | None = None
        self.answer = answer

    async def __call__(self, scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        try:
            while True:
                message = await receive()
                self.received.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except PeerProtocolError as exc:
            self.error = exc
            # A second receive() raises again: nobody reads on past the limit.
            with pytest.raises(PeerProtocolError):
                await receive()
        if self.answer:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"handled"})


def test_asgi_receive_raises_request_too_large_instead_of_a_truncated_body() -> None:
    app = _Catcher()
    scope = http_scope("POST", headers=[_CHUNKED])
    result = asyncio.run(
        call_http(BodyLimit(app, max_body_size=LIMIT), scope, body=[b"x" * 6, b"x" * 6, b"x"])
    )
    assert isinstance(app.error, RequestTooLarge)
    assert app.received == [b"x" * 6]  # the message that crossed the limit was never handed over
    # The app handled the error itself and answered: its answer stands.
    assert result.status == 200
    assert result.body == b"handled"


def test_asgi_app_that_swallows_the_error_without_answering_gets_the_413() -> None:
    app = _Catcher(answer=False)
    result = asyncio.run(
        call_http(
            BodyLimit(app, max_body_size=LIMIT),
            http_scope("POST", headers=[_CHUNKED]),
            body=[b"x" * 11],
        )
    )
    assert isinstance(app.error, RequestTooLarge)
    assert result.status == 413


def test_asgi_error_after_the_response_started_aborts_the_connection() -> None:
    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        while (await receive()).get("more_body", False):
            pass

    result = asyncio.run(
        call_http(
            BodyLimit(app, max_body_size=LIMIT),
            http_scope("POST", headers=[_CHUNKED]),
            body=[b"x" * 6] * 3,
        )
    )
    assert isinstance(result.error, ResponseAborted)
    assert isinstance(result.error.__cause__, RequestTooLarge)
    assert result.status == 200
    assert not result.complete  # the server drops the connection: no complete-looking body


async def _error_page_app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
    """Like Starlette's ServerErrorMiddleware: any error becomes a 500 page, then re-raised."""
    try:
        while (await receive()).get("more_body", False):
            pass
    except Exception:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"Internal Server Error"})
        if scope["path"] == "/reraise":
            raise


@pytest.mark.parametrize("path", ["/reraise", "/return"])
def test_asgi_error_page_built_from_the_limit_is_replaced_by_the_413(path: str) -> None:
    result = asyncio.run(
        call_http(
            BodyLimit(_error_page_app, max_body_size=LIMIT),
            http_scope("POST", path, headers=[_CHUNKED]),
            body=[b"x" * 6] * 2,
        )
    )
    assert result.error is None
    assert result.status == 413
    assert b"Internal Server Error" not in result.body
    assert result.complete


def test_asgi_unrelated_errors_propagate() -> None:
    async def buggy(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        with contextlib.suppress(RequestTooLarge):
            await receive()
        raise ValueError("a bug of its own")

    async def plain_bug(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        raise KeyError("no limit involved")

    result = asyncio.run(
        call_http(
            BodyLimit(buggy, max_body_size=LIMIT),
            http_scope("POST", headers=[_CHUNKED]),
            body=b"x" * 11,
        )
    )
    assert isinstance(result.error, ValueError)
    result = asyncio.run(call_http(BodyLimit(plain_bug, max_body_size=LIMIT), http_scope("POST")))
    assert isinstance(result.error, KeyError)


def test_asgi_errors_wrapped_by_the_framework_are_recognised() -> None:
    async def wrapping(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        try:
            await receive()
        except RequestTooLarge as exc:
            raise ExceptionGroup("task group", [RuntimeError("wrapped")]) from exc

    result = asyncio.run(
        call_http(
            BodyLimit(wrapping, max_body_size=LIMIT),
            http_scope("POST", headers=[_CHUNKED]),
            body=b"x" * 11,
        )
    )
    assert result.error is None
    assert result.status == 413


def test_asgi_error_inside_an_exception_group() -> None:
    async def grouped(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        try:
            await receive()
        except RequestTooLarge as exc:
            raise ExceptionGroup("task group", [exc]) from None

    result = asyncio.run(
        call_http(
            BodyLimit(grouped, max_body_size=LIMIT),
            http_scope("POST", headers=[_CHUNKED]),
            body=b"x" * 11,
        )
    )
    assert result.status == 413


def test_a_very_long_chain_is_not_followed_forever() -> None:
    from crossgate.middleware.body_limit import _caused_by

    cause = RequestTooLarge("x")
    exc: BaseException = cause
    for _ in range(40):
        outer = RuntimeError("link")
        outer.__cause__ = exc
        exc = outer
    assert not _caused_by(exc, cause)
    assert _caused_by(cause, cause)


def test_asgi_disconnect_passes_through_uncounted() -> None:
    seen: list[Message] = []

    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        seen.append(await receive())
        seen.append(await receive())

    asyncio.run(
        call_http(
            BodyLimit(app, max_body_size=LIMIT),
            http_scope("POST", headers=[_CHUNKED]),
            body=[b"abc"],
            body_complete=False,
        )
    )
    assert [m["type"] for m in seen] == ["http.request", "http.disconnect"]


def test_asgi_other_scopes_pass_through_untouched() -> None:
    scopes: list[Any] = []

    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        scopes.append(scope)
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].replace("lifespan.", "")
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    middleware = BodyLimit(app, max_body_size=0)
    lifespan = asyncio.run(call_lifespan(middleware))
    assert lifespan.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    ws_scope = http_scope(type="websocket", headers=[_cl(99)])
    sent = asyncio.run(call_websocket(middleware, ws_scope))
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    assert scopes[1] is not ws_scope  # call_websocket copies it; the content is untouched
    assert scopes[1] == ws_scope


def test_asgi_starlette_app_gets_a_413_not_its_500() -> None:
    async def upload(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    app = BodyLimit(Starlette(routes=[Route("/", upload, methods=["POST"])]), max_body_size=1024)
    ok = asyncio.run(
        call_http(app, http_scope("POST", headers=[_CHUNKED]), body=[b"x" * 512, b"x" * 512])
    )
    assert ok.status == 200
    assert ok.body == b"1024"
    big = asyncio.run(call_http(app, http_scope("POST", headers=[_CHUNKED]), body=[b"x" * 512] * 3))
    assert big.error is None
    assert big.status == 413


# --- WSGI ---------------------------------------------------------------------------------------


def _reader(size: int | None = None) -> Any:
    """A WSGI app that reads its body with ``read(size)`` and answers what it got."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        body = stream.read() if size is None else stream.read(size)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]

    return app


def test_wsgi_invalid_content_length_is_a_400() -> None:
    environ = make_environ("POST", body=b"abc")
    environ["CONTENT_LENGTH"] = "3x"
    # validate=False: the validator itself chokes on the invalid value.
    result = call_wsgi(WSGIBodyLimit(_never_wsgi, max_body_size=LIMIT), environ, validate=False)
    assert result.status == 400


def test_wsgi_content_length_that_lies_smaller_never_lets_extra_bytes_through() -> None:
    # Content-Length 4, 12 bytes sent: reads stop at 4, as PEP 3333 wants of a server.
    environ = make_environ("POST", headers=[_cl(4)], body=b"abcdEXTRAEXTRA")
    result = call_wsgi(WSGIBodyLimit(_reader(), max_body_size=100), environ, validate=False)
    assert result.body == b"abcd"
    environ = make_environ("POST", headers=[_cl(4)], body=b"abcdEXTRAEXTRA")
    result = call_wsgi(WSGIBodyLimit(_reader(100), max_body_size=100), environ)
    assert result.body == b"abcd"


def test_wsgi_without_content_length_or_terminated_input_the_body_is_empty() -> None:
    environ = make_environ("POST", body=b"never read", terminated=False)
    result = call_wsgi(WSGIBodyLimit(_reader(), max_body_size=100), environ, validate=False)
    assert result.body == b""


def test_wsgi_terminated_input_without_content_length_is_counted() -> None:
    environ = make_environ("POST", body=b"x" * 10)
    result = call_wsgi(WSGIBodyLimit(_reader(), max_body_size=10), environ, validate=False)
    assert result.body == b"x" * 10
    environ = make_environ("POST", body=b"x" * 11)
    result = call_wsgi(WSGIBodyLimit(_reader(), max_body_size=10), environ, validate=False)
    assert result.status == 413


class _Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read, as a slow socket might."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1) -> bytes:
        return self._data.read(self._step if size < 0 else min(size, self._step))

    def readline(self, size: int | None = -1) -> bytes:
        return self._data.readline(self._step if size is None or size < 0 else size)


def test_wsgi_short_reads_are_not_taken_for_the_end_of_the_body() -> None:
    environ = make_environ("POST", headers=[_cl(10)], stream=_Trickle(b"0123456789", 3))
    result = call_wsgi(WSGIBodyLimit(_reader(10), max_body_size=100), environ)
    assert result.body == b"0123456789"


def _limited(data: bytes, limit: int, declared: int | None) -> LimitedInput:
    return LimitedInput(io.BytesIO(data), BodyMeter(limit, declared))


def test_limited_input_lines() -> None:
    stream = _limited(b"one\ntwo\nthree\nfour", 100, 18)
    assert stream.readline() == b"one\n"
    assert stream.readline(2) == b"tw"
    assert stream.readline() == b"o\n"
    assert stream.readlines() == [b"three\n", b"four"]
    assert stream.readline() == b""
    assert stream.read() == b""
    assert stream.read(0) == b""
    assert _limited(b"", 100, None).readline() == b""  # end of a body of unknown length
    assert list(_limited(b"a\nb\n", 100, 4)) == [b"a\n", b"b\n"]
    # The hint: stop once the lines so far add up to it (io.IOBase.readlines).
    assert _limited(b"a\nb\nc\n", 100, 6).readlines(3) == [b"a\n", b"b\n"]


def test_limited_input_readline_past_the_limit() -> None:
    # Without a Content-Length a line longer than the limit is never buffered whole.
    stream = _limited(b"x" * 1000 + b"\n", 10, None)
    with pytest.raises(RequestTooLarge):
        stream.readline()
    with pytest.raises(RequestTooLarge):
        next(iter(stream))


def test_limited_input_readline_ending_short() -> None:
    stream = _limited(b"abc", 100, 10)
    with pytest.raises(PeerProtocolError, match="after 3 of the 10 bytes"):
        stream.readline()


def test_limited_input_read_in_pieces_past_the_limit() -> None:
    stream = _limited(b"x" * 30, 25, None)
    assert stream.read(10) == b"x" * 10
    assert stream.read(10) == b"x" * 10
    with pytest.raises(RequestTooLarge):
        stream.read(10)
    with pytest.raises(RequestTooLarge):
        stream.read(1)


def test_wsgi_error_after_start_response_uses_exc_info() -> None:
    # The app called start_response, then read the body: the 413 replaces its status through
    # exc_info, as PEP 3333 allows while nothing went out.
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["wsgi.input"].read()]

    environ = make_environ("POST", body=b"x" * 11)
    result = call_wsgi(WSGIBodyLimit(app, max_body_size=LIMIT), environ, validate=False)
    assert [start[0][:3] for start in result.starts] == ["200", "413"]
    assert result.starts[1][2] is not None  # with exc_info
    assert result.body.startswith(b"413 ")


class _Closing:
    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Any:
        return iter([b"never sent"])

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("closing", [True, False])
def test_wsgi_app_that_swallows_the_error_without_answering_gets_the_413(closing: bool) -> None:
    result_iterable = _Closing()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with pytest.raises(RequestTooLarge):
            environ["wsgi.input"].read()
        return result_iterable if closing else [b"never sent"]

    environ = make_environ("POST", body=b"x" * 11)
    result = call_wsgi(WSGIBodyLimit(app, max_body_size=LIMIT), environ, validate=False)
    assert result.status == 413
    assert result.body.startswith(b"413 ")
    assert result_iterable.closed is closing


def test_wsgi_error_page_built_from_the_limit_is_replaced_by_the_413() -> None:
    result_iterable = _Closing()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            environ["wsgi.input"].read()
        except RequestTooLarge:
            write = start_response(
                "500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info()
            )
            write(b"Internal Server Error")
            # A second start_response after the replacement is ignored the same way.
            start_response("500 Internal Server Error", [], sys.exc_info())
        return result_iterable

    environ = make_environ("POST", body=b"x" * 11)
    result = call_wsgi(WSGIBodyLimit(app, max_body_size=LIMIT), environ, validate=False)
    assert result.status == 413
    assert b"Internal Server Error" not in result.body
    assert result_iterable.closed


def test_wsgi_error_page_then_reraise() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            environ["wsgi.input"].read()
        except RequestTooLarge:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    environ = make_environ("POST", body=b"x" * 11)
    result = call_wsgi(WSGIBodyLimit(app, max_body_size=LIMIT), environ, validate=False)
    assert [start[0][:3] for start in result.starts] == ["413"]
    assert result.body.startswith(b"413 ")


def test_wsgi_unrelated_errors_propagate() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        raise KeyError("no limit involved")

    with pytest.raises(KeyError):
        call_wsgi(WSGIBodyLimit(app, max_body_size=LIMIT), make_environ("POST"), validate=False)


def test_wsgi_flask_app_gets_a_413_not_its_500() -> None:
    flask_app = Flask(__name__)

    @flask_app.post("/")
    def upload() -> str:
        return str(len(flask_request.get_data()))

    app = WSGIBodyLimit(flask_app.wsgi_app, max_body_size=1024)
    ok = call_wsgi(app, make_environ("POST", body=b"x" * 1024))
    assert ok.status == 200
    assert ok.body == b"1024"
    big = call_wsgi(app, make_environ("POST", body=b"x" * 1025))
    assert big.status == 413
