"""`GZip` / `WSGIGZip`: negotiation, what is skipped, ``Vary``, and flushing every chunk.

The table runs on both sides through `tests.middleware._sides`. Streaming is proven with a
rendezvous: the app sends its next chunk only once the client has decoded the previous one, so a
middleware holding chunks back deadlocks (and the bounded wait fails the test) instead of a clock
deciding.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.util import FileWrapper

import httpx
import pytest

from crossgate.exceptions import AppProtocolError
from crossgate.middleware.gzip import GZip, WSGIGZip
from crossgate.sansio import gzip_codec
from crossgate.testing import call_http, call_lifespan, call_websocket, http_scope
from crossgate.types import ASGIReceive, ASGISend, Message, StartResponse, WSGIEnvironment
from tests.middleware._e_apps import ClosingIterable, call_wsgi, make_environ, text_app
from tests.middleware._e_codecs import Decoder, decode
from tests.middleware._e_servers import EVENTS, GATE_TIMEOUT, TIMED_OUT, Server
from tests.middleware._sides import Reply, Request, run

PAIR = (GZip, WSGIGZip)
TEXT = b"The quick brown fox jumps over the lazy dog. " * 40  # 1800 bytes, compressible
HALF = len(TEXT) // 2
# A guard against a deadlock, never a measurement: a rendezvous that is never reached fails the
# test after this long instead of hanging it.
DEADLOCK_GUARD = 10.0


def _accept(value: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"accept-encoding", value),)


def _reply(
    *headers: tuple[str, str],
    status: int = 200,
    chunks: tuple[bytes, ...] = (TEXT[:HALF], TEXT[HALF:]),
    content_type: str | None = "text/plain; charset=utf-8",
) -> Reply:
    base = () if content_type is None else (("Content-Type", content_type),)
    return Reply(status=status, headers=(*base, *headers), chunks=chunks)


@dataclass(frozen=True)
class Case:
    accept: bytes | None
    reply: Reply
    coding: str | None  # the Content-Encoding expected; None: sent as is
    vary: str | None  # the Vary expected
    method: str = "GET"


CASES = {
    "gzip": Case(b"gzip", _reply(), "gzip", "Accept-Encoding"),
    "br preferred": Case(b"gzip, deflate, br", _reply(), "br", "Accept-Encoding"),
    "q-values choose gzip": Case(b"br;q=0.5, gzip", _reply(), "gzip", "Accept-Encoding"),
    "wildcard": Case(b"*", _reply(), "br", "Accept-Encoding"),
    "gzip;q=0": Case(b"gzip;q=0", _reply(), None, "Accept-Encoding"),
    "*;q=0": Case(b"*;q=0", _reply(), None, "Accept-Encoding"),
    "identity;q=0 only": Case(b"identity;q=0", _reply(), None, "Accept-Encoding"),
    "no Accept-Encoding": Case(None, _reply(), None, "Accept-Encoding"),
    "already encoded": Case(
        b"gzip", _reply(("Content-Encoding", "gzip"), chunks=(gzip.compress(TEXT),)), None, None
    ),
    "event stream": Case(b"gzip", _reply(content_type="text/event-stream"), None, None),
    "image": Case(b"gzip", _reply(content_type="image/png"), None, None),
    "no-transform": Case(b"gzip", _reply(("Cache-Control", "no-transform")), None, None),
    "partial content": Case(
        b"gzip", _reply(("Content-Range", "bytes 0-1799/5000"), status=206), None, None
    ),
    "small with Content-Length": Case(
        b"gzip", _reply(("Content-Length", "100"), chunks=(TEXT[:100],)), None, "Accept-Encoding"
    ),
    "large with Content-Length": Case(
        b"gzip", _reply(("Content-Length", str(len(TEXT)))), "gzip", "Accept-Encoding"
    ),
    "HEAD": Case(b"gzip", _reply(), None, "Accept-Encoding", method="HEAD"),
    "304": Case(b"gzip", _reply(status=304, chunks=(), content_type=None), None, "Accept-Encoding"),
    "204": Case(b"gzip", _reply(status=204, chunks=(), content_type=None), None, None),
    "Vary merged": Case(b"gzip", _reply(("Vary", "Cookie")), "gzip", "Cookie, Accept-Encoding"),
    "Vary kept": Case(b"gzip", _reply(("Vary", "accept-encoding")), "gzip", "accept-encoding"),
    "404 compressed too": Case(b"gzip", _reply(status=404), "gzip", "Accept-Encoding"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_table(side: str, case: Case) -> None:
    headers = () if case.accept is None else _accept(case.accept)
    request = Request(case.method, headers=headers)
    outcome = run(side, PAIR, request, case.reply)
    assert outcome.status == case.reply.status
    original = {k.lower(): v for k, v in case.reply.headers}
    assert outcome.header("content-encoding") == (case.coding or original.get("content-encoding"))
    assert outcome.header("vary") == case.vary
    assert sum(1 for k, _ in outcome.headers if k == "vary") == (0 if case.vary is None else 1)
    if case.coding is not None:
        assert decode(case.coding, outcome.body) == b"".join(case.reply.chunks)
        # A stream's length is unknown once compressed: no stale Content-Length.
        assert outcome.header("content-length") is None
    else:
        assert outcome.body == b"".join(case.reply.chunks)  # not even re-encoded
        assert outcome.header("content-length") == original.get("content-length")


def test_already_compressed_responses_are_not_compressed_twice(side: str) -> None:
    body = gzip.compress(TEXT)
    reply = _reply(("Content-Encoding", "gzip"), chunks=(body,))
    outcome = run(side, PAIR, Request(headers=_accept(b"gzip, br")), reply)
    assert outcome.body == body
    assert gzip.decompress(outcome.body) == TEXT


def test_strong_etag_turns_weak_when_compressed(side: str) -> None:
    reply = _reply(("ETag", '"v1"'))
    outcome = run(side, PAIR, Request(headers=_accept(b"gzip")), reply)
    assert outcome.header("etag") == 'W/"v1"'
    plain = run(side, PAIR, Request(), reply)
    assert plain.header("etag") == '"v1"'


def test_gzip_bomb_in_a_request_reaches_the_app_byte_for_byte(side: str) -> None:
    bomb = gzip.compress(b"\0" * (10 * 1024 * 1024))
    headers = (
        (b"content-encoding", b"gzip"),
        (b"content-length", str(len(bomb)).encode()),
        *_accept(b"gzip"),
    )
    outcome = run(side, PAIR, Request("POST", headers=headers, body=bomb))
    assert outcome.seen is not None
    assert outcome.seen.body == bomb
    assert outcome.seen.headers["content-encoding"] == "gzip"


def test_brotli_false_never_offers_br(side: str) -> None:
    outcome = run(side, PAIR, Request(headers=_accept(b"br, gzip")), _reply(), brotli=False)
    assert outcome.header("content-encoding") == "gzip"


def test_minimum_size_zero_compresses_everything(side: str) -> None:
    reply = _reply(chunks=(b"tiny",))
    outcome = run(side, PAIR, Request(headers=_accept(b"gzip")), reply, minimum_size=0)
    assert outcome.header("content-encoding") == "gzip"
    assert decode("gzip", outcome.body) == b"tiny"


def test_excluded_types_option(side: str) -> None:
    reply = _reply(content_type="application/json")
    outcome = run(
        side, PAIR, Request(headers=_accept(b"gzip")), reply, excluded_types=["Application/JSON"]
    )
    assert outcome.header("content-encoding") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"minimum_size": -1}, "minimum_size"),
        ({"compresslevel": 10}, "compresslevel"),
        ({"brotli_quality": 12}, "brotli_quality"),
    ],
)
def test_invalid_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GZip(_asgi_app(), **options)
    with pytest.raises(ValueError, match=message):
        WSGIGZip(text_app(b""), **options)


def test_brotli_true_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gzip_codec, "_brotli", None)
    with pytest.raises(ValueError, match="pip install brotli"):
        GZip(_asgi_app(), brotli=True)
    with pytest.raises(ValueError, match="pip install brotli"):
        WSGIGZip(text_app(b""), brotli=True)
    # The default just leaves br out.
    assert GZip(_asgi_app()).codings == ("gzip",)
    assert WSGIGZip(text_app(b"")).codings == ("gzip",)


# --- ASGI ---------------------------------------------------------------------------------------


def _asgi_app(*messages: Message) -> Callable[..., Any]:
    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        for message in messages:
            await send(message)

    return app


def _start(*headers: tuple[bytes, bytes], status: int = 200) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain"), *headers],
    }


def _gzip_scope(**options: Any) -> dict[str, Any]:
    return http_scope(headers=[(b"accept-encoding", b"gzip")], **options)


def test_asgi_small_body_sent_whole_is_not_compressed() -> None:
    app = GZip(_asgi_app(_start(), {"type": "http.response.body", "body": b"short"}))
    result = asyncio.run(call_http(app, _gzip_scope()))
    assert result.header("content-encoding") is None
    assert result.header("vary") == "Accept-Encoding"
    assert result.body == b"short"


def test_asgi_large_body_sent_whole_gets_its_compressed_length() -> None:
    app = GZip(_asgi_app(_start(), {"type": "http.response.body", "body": TEXT}))
    result = asyncio.run(call_http(app, _gzip_scope()))
    assert result.header("content-encoding") == "gzip"
    assert result.header("content-length") == str(len(result.body))
    assert gzip.decompress(result.body) == TEXT
    assert len(result.messages) == 2


def test_asgi_empty_more_body_messages_pass_as_empty() -> None:
    app = GZip(
        _asgi_app(
            _start(),
            {"type": "http.response.body", "body": TEXT, "more_body": True},
            {"type": "http.response.body", "body": b"", "more_body": True},
            {"type": "http.response.body", "body": b""},
        )
    )
    result = asyncio.run(call_http(app, _gzip_scope()))
    bodies = [m["body"] for m in result.messages[1:]]
    assert bodies[1] == b""
    assert gzip.decompress(result.body) == TEXT


class _Client:
    """A hand-driven ASGI client that decodes the body as it arrives."""

    def __init__(self, coding: str | None = None) -> None:
        self.decoder = Decoder(coding) if coding is not None else None
        self.decoded = b""
        self.events: list[str] = []
        self.start: Message | None = None
        self.arrived = asyncio.Event()

    async def receive(self) -> Message:
        if not self.events:
            self.events.append("request")
            return {"type": "http.request", "body": b""}
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
            self.events.append("client got start")
        else:
            body = message.get("body", b"")
            self.decoded += self.decoder.feed(body) if self.decoder is not None else body
            self.events.append("client got body")
        self.arrived.set()

    def header(self, name: bytes) -> bytes | None:
        assert self.start is not None
        return dict(self.start.get("headers", [])).get(name)


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_asgi_each_chunk_reaches_the_client_before_the_next_is_sent(coding: str) -> None:
    # An SSE-like stream of small events (each far below minimum_size): the app sends event n+1
    # only when the client has decoded event n.
    events = [f"data: event {n}\n\n".encode() for n in range(5)]

    async def main() -> _Client:
        client = _Client(coding)

        async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
            await send(_start())
            for event in events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
                while not client.decoded.endswith(event):
                    client.arrived.clear()
                    await asyncio.wait_for(client.arrived.wait(), DEADLOCK_GUARD)
            await send({"type": "http.response.body", "body": b""})

        scope = http_scope(headers=[(b"accept-encoding", coding.encode())])
        await GZip(app)(scope, client.receive, client.send)
        return client

    client = asyncio.run(main())
    assert client.header(b"content-encoding") == coding.encode()
    assert client.header(b"content-length") is None
    assert client.decoded == b"".join(events)


def test_asgi_headers_go_out_at_once_when_content_length_is_known() -> None:
    # A long poll: headers, then nothing until an event. The start must not wait for the body.
    async def main() -> _Client:
        client = _Client("gzip")

        async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
            await send(_start((b"content-length", str(len(TEXT)).encode())))
            await asyncio.wait_for(client.arrived.wait(), DEADLOCK_GUARD)
            await send({"type": "http.response.body", "body": TEXT})

        await GZip(app)(_gzip_scope(), client.receive, client.send)
        return client

    client = asyncio.run(main())
    assert client.events == ["client got start", "client got body"]
    assert client.header(b"content-encoding") == b"gzip"
    assert client.header(b"content-length") is None  # compressed as a stream
    assert client.decoded == TEXT


def test_asgi_headers_not_to_be_compressed_go_out_at_once() -> None:
    async def main() -> _Client:
        client = _Client()

        async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            await asyncio.wait_for(client.arrived.wait(), DEADLOCK_GUARD)
            await send({"type": "http.response.body", "body": b"data: x\n\n"})

        await GZip(app)(_gzip_scope(), client.receive, client.send)
        return client

    assert asyncio.run(main()).events == ["client got start", "client got body"]


def test_asgi_headers_without_a_length_wait_for_the_first_body_message_only() -> None:
    # Documented: with no Content-Length the start is held until the first body message (it
    # tells whether the body is small and whole), and not a message longer.
    order: list[str] = []

    async def main() -> _Client:
        client = _Client("gzip")

        async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
            await send(_start())
            order.append("app sent start")
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
            order.append("app sent first body")
            await asyncio.wait_for(client.arrived.wait(), DEADLOCK_GUARD)
            await send({"type": "http.response.body", "body": b"last"})

        async def send(message: Message) -> None:
            order.append(f"client got {message['type']}")
            await client.send(message)

        await GZip(app)(_gzip_scope(), client.receive, send)
        return client

    client = asyncio.run(main())
    assert order == [
        "app sent start",
        "client got http.response.start",
        "client got http.response.body",
        "app sent first body",
        "client got http.response.body",
    ]
    assert client.decoded == b"firstlast"


@pytest.mark.parametrize("extension", ["http.response.pathsend", "http.response.zerocopysend"])
def test_asgi_a_file_handed_to_the_server_goes_out_uncompressed(extension: str) -> None:
    if extension == "http.response.pathsend":
        file_message: Message = {"type": extension, "path": "/srv/big.txt"}
    else:
        file_message = {"type": extension, "file": io.BytesIO(TEXT), "count": len(TEXT)}
    app = GZip(_asgi_app(_start((b"content-length", str(len(TEXT)).encode())), file_message))
    scope = _gzip_scope(extensions={extension: {}})
    result = asyncio.run(call_http(app, scope))
    assert result.header("content-encoding") is None
    assert result.header("content-length") == str(len(TEXT))
    assert result.header("vary") == "Accept-Encoding"
    assert result.messages[1]["type"] == extension


def test_asgi_with_the_file_extension_a_body_is_still_compressed() -> None:
    app = GZip(_asgi_app(_start(), {"type": "http.response.body", "body": TEXT}))
    scope = _gzip_scope(extensions={"http.response.pathsend": {}})
    result = asyncio.run(call_http(app, scope))
    assert gzip.decompress(result.body) == TEXT


def test_asgi_file_message_after_a_compressed_start_is_an_app_error() -> None:
    # Without the extension in the scope the app may not send pathsend at all.
    app = GZip(
        _asgi_app(
            _start((b"content-length", str(len(TEXT)).encode())),
            {"type": "http.response.pathsend", "path": "/srv/big.txt"},
        )
    )
    result = asyncio.run(call_http(app, _gzip_scope(), check=False))
    assert isinstance(result.error, AppProtocolError)
    assert "cannot follow a compressed" in str(result.error)


def test_asgi_messages_out_of_order_are_passed_for_the_server_to_report() -> None:
    body: Message = {"type": "http.response.body", "body": b"x"}
    app = GZip(_asgi_app(body))
    result = asyncio.run(call_http(app, _gzip_scope(), check=False))
    assert result.messages == [body]


def test_asgi_messages_after_the_end_pass_through() -> None:
    extra: Message = {"type": "http.response.body", "body": b"late"}
    app = GZip(_asgi_app(_start(), {"type": "http.response.body", "body": TEXT}, extra))
    result = asyncio.run(call_http(app, _gzip_scope(), check=False))
    assert result.messages[-1] == extra


def test_asgi_trailers_are_left_alone() -> None:
    start = _start()
    start["trailers"] = True
    app = GZip(
        _asgi_app(
            start,
            {"type": "http.response.body", "body": TEXT},
            {"type": "http.response.trailers", "headers": [], "more_trailers": False},
        )
    )
    result = asyncio.run(call_http(app, _gzip_scope(), check=False))
    assert result.body == TEXT
    assert result.messages[-1]["type"] == "http.response.trailers"


def test_asgi_other_scopes_pass_through_untouched() -> None:
    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "x" * 2000})
        await send({"type": "websocket.close", "code": 1000})

    middleware = GZip(app)
    assert asyncio.run(call_lifespan(middleware)).types == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    sent = asyncio.run(
        call_websocket(middleware, http_scope(type="websocket", headers=_accept(b"gzip")))
    )
    assert sent[1] == {"type": "websocket.send", "text": "x" * 2000}


# --- WSGI ---------------------------------------------------------------------------------------


def _gzip_environ(method: str = "GET", **options: Any) -> dict[str, Any]:
    return make_environ(method, headers=[(b"accept-encoding", b"gzip")], **options)


def test_wsgi_list_is_compressed_whole_with_its_length() -> None:
    result = call_wsgi(WSGIGZip(text_app([TEXT[:HALF], TEXT[HALF:]])), _gzip_environ())
    assert result.headers["content-encoding"] == "gzip"
    assert result.headers["content-length"] == str(len(result.body))
    assert len(result.chunks) == 1
    assert gzip.decompress(result.body) == TEXT


def test_wsgi_small_list_is_returned_as_is() -> None:
    body = [b"short"]

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    result = call_wsgi(WSGIGZip(app), _gzip_environ(), validate=False)
    assert result.result is body  # the app's own object: nothing wrapped
    assert result.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in result.headers


def test_wsgi_large_list_with_content_length_gets_the_new_length() -> None:
    app = text_app(
        [TEXT],
        headers=[("Content-Type", "text/plain"), ("Content-Length", str(len(TEXT)))],
    )
    result = call_wsgi(WSGIGZip(app), _gzip_environ())
    assert result.headers["content-length"] == str(len(result.body))
    assert gzip.decompress(result.body) == TEXT


def test_wsgi_file_wrapper_keeps_its_fast_path_when_not_compressed() -> None:
    returned: list[object] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "image/png")])
        wrapper = environ["wsgi.file_wrapper"](io.BytesIO(b"\x89PNG" + b"\0" * 2000))
        returned.append(wrapper)
        return wrapper  # type: ignore[no-any-return]  # environ values are Any

    environ = _gzip_environ()
    environ["wsgi.file_wrapper"] = FileWrapper
    result = call_wsgi(WSGIGZip(app), environ, validate=False)
    assert result.result is returned[0]
    assert "content-encoding" not in result.headers


def test_wsgi_file_wrapper_compressed_when_compressible() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return FileWrapper(io.BytesIO(TEXT), 256)

    result = call_wsgi(WSGIGZip(app), _gzip_environ(), validate=False)
    assert result.headers["content-encoding"] == "gzip"
    assert gzip.decompress(result.body) == TEXT


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_wsgi_each_chunk_reaches_the_client_before_the_next_is_made(coding: str) -> None:
    events = [f"data: event {n}\n\n".encode() for n in range(5)]
    decoder = Decoder(coding)
    decoded = bytearray()

    def on_chunk(chunk: bytes) -> None:
        decoded.extend(decoder.feed(chunk))

    def stream() -> Iterator[bytes]:
        for event in events:
            yield event
            # The server asks for the next chunk only after sending this one: by now the client
            # must have decoded the event.
            assert decoded.endswith(event)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return stream()

    environ = make_environ(headers=[(b"accept-encoding", coding.encode())])
    result = call_wsgi(WSGIGZip(app), environ, on_chunk=on_chunk)
    assert result.headers["content-encoding"] == coding
    assert "content-length" not in result.headers
    assert bytes(decoded) == b"".join(events)


@pytest.mark.parametrize("chunks", [[TEXT], [b"short"], []], ids=["streamed", "small", "empty"])
def test_wsgi_close_is_always_called(chunks: list[bytes]) -> None:
    inner = ClosingIterable(chunks)
    result = call_wsgi(WSGIGZip(text_app(inner)), _gzip_environ())
    assert inner.closed
    assert decode(result.headers.get("content-encoding"), result.body) == b"".join(chunks)


def test_wsgi_close_is_called_when_the_client_leaves_early() -> None:
    inner = ClosingIterable([TEXT] * 5)
    call_wsgi(WSGIGZip(text_app(inner)), _gzip_environ(), stop_after=1)
    assert inner.closed
    assert inner.served == 1


def test_wsgi_close_is_called_when_start_response_raises() -> None:
    inner = ClosingIterable([TEXT])

    def failing_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        raise RuntimeError("the server refused the headers")

    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(TEXT)))]
    middleware = WSGIGZip(text_app(inner, headers=headers))
    with pytest.raises(RuntimeError, match="refused"):
        middleware(_gzip_environ(), failing_start_response)
    assert inner.closed


def test_wsgi_empty_stream_is_sent_as_is_or_compressed_with_minimum_size_zero() -> None:
    result = call_wsgi(WSGIGZip(text_app(iter([]))), _gzip_environ())
    assert "content-encoding" not in result.headers
    assert result.body == b""
    result = call_wsgi(WSGIGZip(text_app(iter([])), minimum_size=0), _gzip_environ())
    assert result.headers["content-encoding"] == "gzip"
    assert gzip.decompress(result.body) == b""


def test_wsgi_start_response_inside_the_generator() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield TEXT

    result = call_wsgi(WSGIGZip(app), _gzip_environ())
    assert result.headers["content-encoding"] == "gzip"
    assert gzip.decompress(result.body) == TEXT


def test_wsgi_start_response_inside_the_generator_not_compressed() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "image/png")])
        yield TEXT

    result = call_wsgi(WSGIGZip(app), _gzip_environ())
    assert "content-encoding" not in result.headers
    assert result.body == TEXT


def test_wsgi_no_start_response_at_all_is_left_to_the_server() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        yield from ()

    result = call_wsgi(WSGIGZip(app), _gzip_environ(), validate=False)
    assert result.starts == []
    assert result.chunks == []


def test_wsgi_a_body_without_start_response_is_an_app_error() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        yield b"body first"

    with pytest.raises(AppProtocolError, match="without calling start_response"):
        call_wsgi(WSGIGZip(app), _gzip_environ(), validate=False)


def test_wsgi_write_callable_is_compressed_and_flushed() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(TEXT[:HALF])
        write(b"")
        return [TEXT[HALF:]]

    result = call_wsgi(WSGIGZip(app), _gzip_environ())
    assert result.headers["content-encoding"] == "gzip"
    assert Decoder("gzip").feed(result.written[0]) == TEXT[:HALF]  # flushed on its own
    assert len(result.written) == 1  # the empty write sent nothing
    assert gzip.decompress(result.body) == TEXT


def test_wsgi_write_callable_when_not_compressing() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "image/png")])
        write(TEXT)
        return []

    result = call_wsgi(WSGIGZip(app), _gzip_environ())
    assert result.written == [TEXT]


def test_wsgi_error_before_anything_went_out_is_decided_afresh() -> None:
    # PEP 3333 "Error Handling": start_response again with exc_info while nothing was sent.
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("failed before the body")
        except ValueError:
            start_response(
                "500 Internal Server Error", [("Content-Type", "image/png")], sys.exc_info()
            )
        yield b"error page"

    result = call_wsgi(WSGIGZip(app), _gzip_environ())
    assert result.status == 500
    assert "content-encoding" not in result.headers
    assert result.body == b"error page"


def test_wsgi_error_after_the_start_was_decided_is_decided_afresh() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # With a Content-Length the decision (compress) is made, and start_response passed on,
        # when the app returns.
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2000")])

        def body() -> Iterator[bytes]:
            try:
                raise ValueError("failed in the generator")
            except ValueError:
                start_response(
                    "500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info()
                )
            yield b"error page"

        return body()

    result = call_wsgi(WSGIGZip(app), _gzip_environ(), validate=False)
    assert [start[0][:3] for start in result.starts] == ["200", "500"]
    assert result.status == 500
    assert gzip.decompress(result.body) == b"error page"


def test_wsgi_error_after_the_body_started_is_reraised() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield TEXT
        try:
            raise ValueError("failed mid-body")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"never"  # pragma: no cover

    with pytest.raises(ValueError, match="failed mid-body"):
        call_wsgi(WSGIGZip(app), _gzip_environ(), validate=False)


def test_wsgi_second_start_response_without_exc_info_is_an_app_error() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []  # pragma: no cover

    with pytest.raises(AppProtocolError, match="second time"):
        call_wsgi(WSGIGZip(app), _gzip_environ(), validate=False)


def test_wsgi_head_is_never_compressed() -> None:
    result = call_wsgi(WSGIGZip(text_app([TEXT])), _gzip_environ("HEAD"))
    assert "content-encoding" not in result.headers
    assert result.headers["vary"] == "Accept-Encoding"


def test_repeated_fields_are_read_as_lists(side: str) -> None:
    # Content-Encoding "identity" then "gzip" means gzip was applied: left alone.
    encoded = _reply(("Content-Encoding", "identity"), ("Content-Encoding", "gzip"))
    outcome = run(side, PAIR, Request(headers=_accept(b"gzip")), encoded)
    assert outcome.body == TEXT
    # Two Content-Length headers cannot be trusted: left alone rather than guessed at.
    lengths = _reply(("Content-Length", str(len(TEXT))), ("Content-Length", str(len(TEXT))))
    outcome = run(side, PAIR, Request(headers=_accept(b"gzip")), lengths)
    assert outcome.header("content-encoding") is None
    # Two Vary headers become one that names Accept-Encoding once.
    varied = _reply(("Vary", "Cookie"), ("X-Other", "kept"), ("Vary", "Origin"))
    outcome = run(side, PAIR, Request(headers=_accept(b"gzip")), varied)
    assert outcome.header("vary") == "Cookie, Origin, Accept-Encoding"
    assert outcome.header("x-other") == "kept"


@pytest.mark.parametrize("content_type", ["text/plain", "image/png"])
def test_wsgi_empty_chunks_are_passed_on_empty(content_type: str) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", content_type)])
        yield b""
        yield TEXT

    result = call_wsgi(WSGIGZip(app), _gzip_environ())
    assert result.chunks[0] == b""
    assert decode(result.headers.get("content-encoding"), result.body) == TEXT


# --- real servers -------------------------------------------------------------------------------


@pytest.fixture(params=["uvicorn", "gunicorn"])
def stream_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    server = Server(str(request.param), tmp_path / "server.log")
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


@pytest.mark.servers
def test_real_server_streams_every_chunk_compressed(stream_server: Server) -> None:
    # uvicorn serves GZip, gunicorn (threaded worker) serves WSGIGZip. Each event reaches the
    # client, decodable, before the app sends the next: the app waits for the client to release
    # it from a second connection.
    token = secrets.token_hex(8)
    decoder = Decoder("gzip")
    decoded = b""
    with (
        httpx.Client(base_url=stream_server.url, timeout=GATE_TIMEOUT * 2) as client,
        client.stream("GET", f"/stream?token={token}", headers={"Accept-Encoding": "gzip"}) as r,
    ):
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["vary"] == "Accept-Encoding"
        raw = r.iter_raw()
        for n in range(EVENTS):
            event = f"data: event {n}\n\n".encode()
            while event not in decoded:
                decoded += decoder.feed(next(raw))
                assert TIMED_OUT not in decoded, stream_server.log()
            assert client.get(f"/release?token={token}&n={n}").text == "released"
        for piece in raw:
            decoded += decoder.feed(piece)
    assert decoded == b"".join(f"data: event {n}\n\n".encode() for n in range(EVENTS))


def test_asgi_the_apps_messages_are_never_changed() -> None:
    # An app may send the same message objects on every request; a middleware that edited them
    # would carry one response's headers into the next.
    start = _start()
    body: Message = {"type": "http.response.body", "body": TEXT}
    before = (dict(start), list(start["headers"]), dict(body))
    app = GZip(_asgi_app(start, body))
    for _ in range(2):
        result = asyncio.run(call_http(app, _gzip_scope()))
        assert result.header("content-encoding") == "gzip"
    assert (start, start["headers"], body) == before


# --- issue 19, item 6: BREACH padding and Accept-Ranges ------------------------------------


def _gzip_fname(body: bytes) -> bytes | None:
    """The FNAME field of a gzip member (RFC 1952 section 2.3), ``None`` when absent."""
    assert body[:3] == b"\x1f\x8b\x08"
    if not body[3] & 0x08:
        return None
    end = body.index(b"\x00", 10)
    return body[10:end]


@pytest.mark.parametrize("chunks", [(TEXT,), (TEXT[:HALF], TEXT[HALF:])], ids=["whole", "streamed"])
def test_random_padding_varies_the_compressed_length(side: str, chunks: tuple[bytes, ...]) -> None:
    # Django 4.2+'s defence: a random-length file name in the gzip header. The body still
    # decodes to the same bytes, and across responses the padding (so the length) varies.
    reply = _reply(chunks=chunks)
    padding: set[int] = set()
    for _ in range(40):
        outcome = run(side, PAIR, Request(headers=_accept(b"gzip")), reply, max_random_bytes=100)
        assert outcome.header("content-encoding") == "gzip"
        assert gzip.decompress(outcome.body) == TEXT
        name = _gzip_fname(outcome.body)
        assert name is not None
        assert set(name) <= {ord("a")}
        assert len(name) <= 100
        padding.add(len(name))
    assert len(padding) > 1  # 40 draws from 101 values: all equal has odds of 101**-39


def test_no_padding_by_default(side: str) -> None:
    outcome = run(side, PAIR, Request(headers=_accept(b"gzip")), _reply())
    assert _gzip_fname(outcome.body) is None


def test_padding_leaves_br_out(side: str) -> None:
    outcome = run(side, PAIR, Request(headers=_accept(b"br, gzip")), _reply(), max_random_bytes=10)
    assert outcome.header("content-encoding") == "gzip"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_random_bytes": -1}, "max_random_bytes"),
        ({"max_random_bytes": 10, "brotli": True}, "brotli=False"),
    ],
)
def test_invalid_padding_options(options: dict[str, Any], message: str) -> None:
    if options.get("brotli") and not gzip_codec.brotli_available():
        pytest.skip("brotli is not installed")
    with pytest.raises(ValueError, match=message):
        GZip(_asgi_app(), **options)
    with pytest.raises(ValueError, match=message):
        WSGIGZip(text_app(b""), **options)


def test_accept_ranges_is_dropped_from_a_compressed_response(side: str) -> None:
    # Byte ranges of the uncompressed body mean nothing in the compressed one (nginx drops the
    # header too); an uncompressed response keeps it.
    reply = _reply(("Accept-Ranges", "bytes"))
    compressed = run(side, PAIR, Request(headers=_accept(b"gzip")), reply)
    assert compressed.header("content-encoding") == "gzip"
    assert compressed.header("accept-ranges") is None
    plain = run(side, PAIR, Request(), reply)
    assert plain.header("accept-ranges") == "bytes"
