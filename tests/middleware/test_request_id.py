"""`RequestID` / `WSGIRequestID`: the id (reused only when trusted and safe), where the app and
the logs find it, and one access line per request, whatever happened to it."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any
from wsgiref.util import FileWrapper

import pytest

from crossgate.middleware.body_limit import BodyLimit, WSGIBodyLimit
from crossgate.middleware.gzip import GZip, WSGIGZip
from crossgate.middleware.proxy_headers import ProxyHeaders, WSGIProxyHeaders
from crossgate.middleware.request_id import (
    RequestID,
    RequestIDFilter,
    WSGIRequestID,
    current_request_id,
)
from crossgate.testing import call_http, call_lifespan, call_websocket, http_scope
from crossgate.types import ASGIReceive, ASGISend, StartResponse, WSGIEnvironment
from tests.middleware._e_apps import ClosingIterable, call_wsgi, make_environ, text_app
from tests.middleware._e_codecs import decode
from tests.middleware._sides import Reply, Request, run

PAIR = (RequestID, WSGIRequestID)
HEX32 = re.compile(r"[0-9a-f]{32}")
ACCESS = "crossgate.access"


def _incoming(value: bytes, name: bytes = b"x-request-id") -> tuple[tuple[bytes, bytes], ...]:
    return ((name, value),)


def _app_id(side: str, outcome: Any) -> str:
    """The id the inner app was given (scope / environ key)."""
    seen = outcome.seen
    assert seen is not None
    source = seen.scope if side == "asgi" else seen.environ
    assert source is not None
    return str(source["crossgate.request_id"])


def _access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS]


# --- both sides ---------------------------------------------------------------------------------


def test_a_fresh_id_goes_to_the_app_and_the_response(side: str) -> None:
    outcome = run(side, PAIR, Request())
    request_id = outcome.header("x-request-id")
    assert request_id is not None
    assert HEX32.fullmatch(request_id)
    assert _app_id(side, outcome) == request_id
    assert outcome.seen is not None
    assert outcome.seen.headers["x-request-id"] == request_id  # the request header too


def test_ids_differ_per_request(side: str) -> None:
    ids = {run(side, PAIR, Request()).header("x-request-id") for _ in range(5)}
    assert len(ids) == 5


def test_incoming_id_is_ignored_by_default(side: str) -> None:
    # An untrusted client cannot choose the id that ends up in the logs.
    outcome = run(side, PAIR, Request(headers=_incoming(b"spoofed")))
    request_id = outcome.header("x-request-id")
    assert request_id != "spoofed"
    assert outcome.seen is not None
    assert outcome.seen.headers["x-request-id"] == request_id  # replaced, not appended


def test_incoming_id_is_reused_when_trusted(side: str) -> None:
    outcome = run(side, PAIR, Request(headers=_incoming(b"from-proxy-123")), trust_incoming=["*"])
    assert outcome.header("x-request-id") == "from-proxy-123"
    assert _app_id(side, outcome) == "from-proxy-123"
    fresh = run(side, PAIR, Request(), trust_incoming=["*"])  # trusted, but none sent
    assert HEX32.fullmatch(str(fresh.header("x-request-id")))


@pytest.mark.parametrize(
    ("client", "trusted", "reused"),
    [
        (("10.1.2.3", 4000), ["10.0.0.0/8"], True),
        (("203.0.113.9", 4000), ["10.0.0.0/8"], False),
        (("::1", 4000), ["::1"], True),
        (("2001:db8::7", 4000), ["2001:db8::/32", "10.0.0.0/8"], True),
        (None, ["unix"], True),
        (None, ["127.0.0.1"], False),
        (("127.0.0.1", 4000), "127.0.0.1, 10.0.0.0/8", True),  # a string is split on commas
    ],
)
def test_incoming_id_is_reused_only_from_trusted_peers(
    side: str, client: tuple[str, int] | None, trusted: Any, reused: bool
) -> None:
    request = Request(headers=_incoming(b"proxy-id"), client=client)
    outcome = run(side, PAIR, request, trust_incoming=trusted)
    assert (outcome.header("x-request-id") == "proxy-id") is reused


def _behind_proxy(request_id: Any, proxy: Any) -> Any:
    """``proxy(request_id(app))``: a factory for `run` with the recommended order."""

    def factory(app: Any, **options: Any) -> Any:
        return proxy(request_id(app, **options), trusted=["10.0.0.1"])

    return factory


BEHIND_PROXY = (
    _behind_proxy(RequestID, ProxyHeaders),
    _behind_proxy(WSGIRequestID, WSGIProxyHeaders),
)


@pytest.mark.parametrize(
    ("client", "reused"),
    [
        # The proxy spoke: its id is reused, while the app and the log see the real client.
        (("10.0.0.1", 4000), True),
        # A client spoofing both headers directly: ProxyHeaders strips them, nothing is reused.
        (("203.0.113.9", 4000), False),
    ],
)
def test_behind_proxy_headers_the_proxy_is_the_trusted_peer(
    side: str, client: tuple[str, int], reused: bool
) -> None:
    headers = ((b"x-forwarded-for", b"198.51.100.7"), (b"x-request-id", b"proxy-id"))
    outcome = run(
        side, BEHIND_PROXY, Request(headers=headers, client=client), trust_incoming=["10.0.0.1"]
    )
    assert (outcome.header("x-request-id") == "proxy-id") is reused
    assert outcome.seen is not None
    assert outcome.seen.client is not None
    assert outcome.seen.client[0] == ("198.51.100.7" if reused else "203.0.113.9")


@pytest.mark.parametrize(
    "value",
    [
        b"abc\r\nSet-Cookie: session=stolen",
        b"abc\nx",
        b"a\x00b",
        b"a\x1b[31mred",
        b"x" * 129,
        "caf\u00e9".encode(),
        b"caf\xe9",
        b"two words",
        b'quo"te',
        b"",
    ],
)
def test_unsafe_incoming_ids_are_replaced_even_when_trusted(side: str, value: bytes) -> None:
    outcome = run(side, PAIR, Request(headers=_incoming(value)), trust_incoming=["*"])
    request_id = outcome.header("x-request-id")
    assert request_id is not None
    assert HEX32.fullmatch(request_id)
    assert outcome.seen is not None
    assert outcome.seen.headers["x-request-id"] == request_id


def test_max_id_length_option(side: str) -> None:
    request = Request(headers=_incoming(b"x" * 20))
    assert run(side, PAIR, request, trust_incoming=["*"], max_id_length=20).header(
        "x-request-id"
    ) == ("x" * 20)
    assert run(side, PAIR, request, trust_incoming=["*"], max_id_length=19).header(
        "x-request-id"
    ) != ("x" * 20)


def test_the_apps_own_response_header_is_replaced(side: str) -> None:
    reply = Reply(headers=(("Content-Type", "text/plain"), ("X-Request-ID", "app-made")))
    outcome = run(side, PAIR, Request(), reply)
    values = [v for k, v in outcome.headers if k == "x-request-id"]
    assert len(values) == 1
    assert values[0] != "app-made"
    assert values[0] == _app_id(side, outcome)


def test_custom_header_name(side: str) -> None:
    request = Request(headers=_incoming(b"corr-1", b"x-correlation-id"))
    outcome = run(side, PAIR, request, header="X-Correlation-ID", trust_incoming=["*"])
    assert outcome.header("x-correlation-id") == "corr-1"
    assert outcome.header("x-request-id") is None


def test_one_access_line_per_request(side: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, ACCESS):
        outcome = run(
            side,
            PAIR,
            Request("POST", "/items/7", query=b"page=2", body=b"data"),
            Reply(status=201, chunks=(b"created", b"!")),
        )
    [record] = _access_records(caplog)
    request_id = outcome.header("x-request-id")
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert re.fullmatch(
        r'127\.0\.0\.1:50000 - "POST /items/7\?page=2 HTTP/1\.1" 201 8 \d+\.\d\dms id='
        + str(request_id),
        message,
    ), message
    fields = record.__dict__
    assert fields["request_id"] == request_id
    assert fields["http_method"] == "POST"
    assert fields["http_path"] == "/items/7"
    assert fields["http_status"] == 201
    assert fields["response_bytes"] == 8
    assert fields["duration_ms"] >= 0
    assert fields["outcome"] == "complete"
    assert fields["client_addr"] == "127.0.0.1:50000"


def test_both_sides_write_the_same_line(caplog: pytest.LogCaptureFixture) -> None:
    request = Request(
        "GET",
        "/caf\u00e9/a b",
        raw_path=b"/caf%C3%A9/a%20b",
        query=b"q=%20x",
        headers=_incoming(b"same-id"),
    )
    lines = []
    for side in ("asgi", "wsgi"):
        caplog.clear()
        with caplog.at_level(logging.INFO, ACCESS):
            run(side, PAIR, request, trust_incoming=["*"])
        [record] = _access_records(caplog)
        lines.append(re.sub(r"\d+\.\d\dms", "Tms", record.getMessage()))
    assert lines[0] == lines[1]
    assert '"GET /caf%C3%A9/a%20b?q=%20x HTTP/1.1"' in lines[0]


def test_access_log_off(side: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, ACCESS):
        outcome = run(side, PAIR, Request(), access_log=False)
    assert outcome.header("x-request-id") is not None
    assert _access_records(caplog) == []


def test_access_log_below_info_is_not_formatted(
    side: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, ACCESS):
        run(side, PAIR, Request())
    assert _access_records(caplog) == []


def test_logger_option(side: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "myapp.access"):
        run(side, PAIR, Request(), logger=logging.getLogger("myapp.access"))
        run(side, PAIR, Request(), logger="myapp.access")
    assert [r.name for r in caplog.records] == ["myapp.access", "myapp.access"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"header": "X Request"}, "header"),
        ({"header": "X-Request-ID\r\n"}, "header"),
        ({"trust_incoming": ["example.com"]}, "trusted peer"),
        ({"max_id_length": 0}, "max_id_length"),
    ],
)
def test_invalid_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RequestID(_plain_asgi, **options)
    with pytest.raises(ValueError, match=message):
        WSGIRequestID(text_app(b""), **options)


async def _plain_asgi(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


# --- ASGI ---------------------------------------------------------------------------------------


def _asgi_line(
    app: Any, caplog: pytest.LogCaptureFixture, **call: Any
) -> tuple[Any, logging.LogRecord]:
    with caplog.at_level(logging.INFO, ACCESS):
        result = asyncio.run(call_http(RequestID(app), call.pop("scope", http_scope()), **call))
    [record] = _access_records(caplog)
    return result, record


def test_asgi_app_error_is_logged_as_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        raise RuntimeError("boom")

    result, record = _asgi_line(app, caplog)
    assert isinstance(result.error, RuntimeError)  # still raised to the server
    assert record.__dict__["http_status"] == 500
    assert record.getMessage().endswith("(app error)")


def test_asgi_app_error_after_the_start_keeps_its_status(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("boom")

    _, record = _asgi_line(app, caplog)
    assert record.__dict__["http_status"] == 200
    assert record.__dict__["response_bytes"] == 4
    assert record.__dict__["outcome"] == "app error"


def test_asgi_client_leaving_mid_response_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(10):
            await send({"type": "http.response.body", "body": b"x" * 100, "more_body": True})
        await send({"type": "http.response.body", "body": b""})  # pragma: no cover

    result, record = _asgi_line(app, caplog, disconnect_after_bytes=100)
    assert isinstance(result.error, OSError)
    assert record.__dict__["http_status"] == 200
    assert record.__dict__["response_bytes"] == 100
    assert record.getMessage().endswith("(client disconnected)")


def test_asgi_client_leaving_before_any_response_is_a_499(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    result, record = _asgi_line(app, caplog, body=[b"half"], body_complete=False)
    assert result.error is None
    assert record.__dict__["http_status"] == 499
    assert record.__dict__["outcome"] == "client disconnected"


def test_asgi_disconnect_after_a_complete_response_is_normal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        assert (await receive())["type"] == "http.request"
        assert (await receive())["type"] == "http.disconnect"

    _, record = _asgi_line(app, caplog)
    assert record.__dict__["outcome"] == "complete"


def test_asgi_cancelled_app_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    started = asyncio.Event()

    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        started.set()
        await asyncio.Event().wait()

    async def main() -> None:
        task = asyncio.ensure_future(RequestID(app)(http_scope(), _never_receive, _ignore_send))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.INFO, ACCESS):
        asyncio.run(main())
    [record] = _access_records(caplog)
    assert record.__dict__["http_status"] == 499
    assert record.__dict__["outcome"] == "cancelled"


async def _never_receive() -> Any:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")  # pragma: no cover


async def _ignore_send(message: Any) -> None:
    return None


def test_asgi_app_returning_without_finishing_is_incomplete(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    _, record = _asgi_line(app, caplog)
    assert record.__dict__["outcome"] == "incomplete"
    assert record.__dict__["http_status"] == 200


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "http.response.pathsend", "path": "/srv/file"}],
        [
            {"type": "http.response.zerocopysend", "file": None, "more_body": True},
            {"type": "http.response.zerocopysend", "file": None},
        ],
    ],
)
def test_asgi_file_messages_complete_the_response(
    messages: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for message in messages:
            await send(message)

    _, record = _asgi_line(app, caplog)
    assert record.__dict__["outcome"] == "complete"


def test_asgi_log_line_cannot_be_forged_through_the_path(caplog: pytest.LogCaptureFixture) -> None:
    # Raw CR/LF and a quote in the path bytes (a lax server passes them on) are escaped.
    scope = http_scope(
        "G\nET", "/a\r\nINFO forged", raw_path=b'/a\r\nINFO forged" 200', query_string=b"a=\r\n"
    )
    _, record = _asgi_line(_plain_asgi, caplog, scope=scope)
    message = record.getMessage()
    assert "\n" not in message
    assert "\r" not in message
    assert '"G\\x0aET /a%0D%0AINFO%20forged%22%20200?a=\\x0d\\x0a HTTP/1.1"' in message


def test_asgi_without_raw_path_logs_the_path(caplog: pytest.LogCaptureFixture) -> None:
    scope = http_scope("GET", "/plain", client=None)
    scope["raw_path"] = None
    _, record = _asgi_line(_plain_asgi, caplog, scope=scope)
    assert record.getMessage().startswith('- - "GET /plain HTTP/1.1"')


def test_asgi_context_variable_and_filter(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str | None] = []
    app_log = logging.getLogger("tests.request_id.app")

    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        seen.append(current_request_id())

        async def child() -> None:
            seen.append(current_request_id())  # tasks started by the app inherit it

        await asyncio.ensure_future(child())
        app_log.warning("inside the app")
        await _plain_asgi(scope, receive, send)

    id_filter = RequestIDFilter()
    caplog.handler.addFilter(id_filter)
    try:
        with caplog.at_level(logging.INFO):
            result = asyncio.run(call_http(RequestID(app), http_scope()))
            app_log.warning("outside any request")
    finally:
        caplog.handler.removeFilter(id_filter)
    request_id = result.header("x-request-id")
    assert seen == [request_id, request_id]
    assert current_request_id() is None
    by_message = {r.getMessage(): r for r in caplog.records}
    assert by_message["inside the app"].__dict__["request_id"] == request_id
    assert by_message["outside any request"].__dict__["request_id"] == "-"


def test_filter_keeps_an_id_already_on_the_record() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    record.request_id = "given"
    assert RequestIDFilter(default="none").filter(record)
    assert record.__dict__["request_id"] == "given"
    bare = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    assert RequestIDFilter(default="none").filter(bare)
    assert bare.__dict__["request_id"] == "none"


def _websocket_app(*messages: dict[str, Any]) -> Any:
    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        for message in messages:
            await send(message)

    return app


@pytest.mark.parametrize(
    ("messages", "status"),
    [
        (({"type": "websocket.accept"}, {"type": "websocket.close", "code": 1000}), 101),
        (({"type": "websocket.close", "code": 1008},), 403),
        (
            (
                {"type": "websocket.http.response.start", "status": 401, "headers": []},
                {"type": "websocket.http.response.body", "body": b"no"},
            ),
            401,
        ),
    ],
)
def test_asgi_websocket(
    messages: tuple[dict[str, Any], ...], status: int, caplog: pytest.LogCaptureFixture
) -> None:
    scope = http_scope("GET", "/ws", type="websocket", headers=_incoming(b"ws-id"))
    with caplog.at_level(logging.INFO, ACCESS):
        sent = asyncio.run(
            call_websocket(RequestID(_websocket_app(*messages), trust_incoming=["*"]), scope)
        )
    [record] = _access_records(caplog)
    assert record.__dict__["http_status"] == status
    assert record.__dict__["outcome"] == "complete"
    assert record.getMessage().startswith('127.0.0.1:50000 - "WEBSOCKET /ws HTTP/1.1"')
    if status == 403:
        assert sent[0] == {"type": "websocket.close", "code": 1008}  # no headers to carry it
    else:
        assert (b"x-request-id", b"ws-id") in sent[0]["headers"]


def test_asgi_lifespan_passes_through_untouched() -> None:
    scopes: list[Any] = []

    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        scopes.append(scope)
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    state: dict[str, Any] = {}
    result = asyncio.run(call_lifespan(RequestID(app), state=state))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert "crossgate.request_id" not in scopes[0]
    assert scopes[0]["state"] is state


# --- WSGI ---------------------------------------------------------------------------------------


def _wsgi_line(
    app: Any, caplog: pytest.LogCaptureFixture, environ: dict[str, Any] | None = None, **call: Any
) -> tuple[Any, logging.LogRecord]:
    with caplog.at_level(logging.INFO, ACCESS):
        result = call_wsgi(WSGIRequestID(app), environ or make_environ(), **call)
    [record] = _access_records(caplog)
    return result, record


def test_wsgi_app_error_is_logged_as_500(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        raise RuntimeError("boom")

    with caplog.at_level(logging.INFO, ACCESS), pytest.raises(RuntimeError):
        call_wsgi(WSGIRequestID(app), make_environ(), validate=False)
    [record] = _access_records(caplog)
    assert record.__dict__["http_status"] == 500
    assert record.__dict__["outcome"] == "app error"


@pytest.mark.parametrize(("before", "status"), [(0, 500), (1, 200)])
def test_wsgi_error_while_iterating(
    before: int, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for _ in range(before):
            yield b"part"
        raise RuntimeError("boom")

    with caplog.at_level(logging.INFO, ACCESS), pytest.raises(RuntimeError):
        call_wsgi(WSGIRequestID(app), make_environ())
    [record] = _access_records(caplog)
    assert record.__dict__["http_status"] == status  # 500 when nothing went out yet
    assert record.__dict__["response_bytes"] == 4 * before
    assert record.__dict__["outcome"] == "app error"


def test_wsgi_client_leaving_early_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    inner = ClosingIterable([b"x" * 10] * 5)
    _, record = _wsgi_line(text_app(inner), caplog, stop_after=2)
    assert inner.closed
    assert record.__dict__["response_bytes"] == 20
    assert record.__dict__["outcome"] == "client disconnected"
    assert record.__dict__["http_status"] == 200


def test_wsgi_client_leaving_before_start_response_is_a_499(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])  # pragma: no cover
        yield b""  # pragma: no cover

    with caplog.at_level(logging.INFO, ACCESS):
        iterable = WSGIRequestID(app)(make_environ(), _unused_start_response)
        iterable.close()  # type: ignore[attr-defined]  # the middleware's iterable has close()
        iterable.close()  # type: ignore[attr-defined]  # a second close() logs nothing more
    [record] = _access_records(caplog)
    assert record.__dict__["http_status"] == 499


def _unused_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
    raise AssertionError("never called")  # pragma: no cover


def test_wsgi_close_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(ClosingIterable):
        def close(self) -> None:
            raise RuntimeError("close failed")

    with caplog.at_level(logging.INFO, ACCESS), pytest.raises(RuntimeError, match="close"):
        call_wsgi(WSGIRequestID(text_app(Failing([b"ok"]))), make_environ(), validate=False)
    [record] = _access_records(caplog)
    assert record.__dict__["outcome"] == "app error"
    assert record.__dict__["http_status"] == 200


def test_wsgi_empty_chunks_count_as_nothing_sent(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b""
        raise RuntimeError("boom")

    with caplog.at_level(logging.INFO, ACCESS), pytest.raises(RuntimeError):
        call_wsgi(WSGIRequestID(app), make_environ())
    [record] = _access_records(caplog)
    assert record.__dict__["http_status"] == 500  # the headers never went out


def test_wsgi_write_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written")
        return [b"+returned"]

    result, record = _wsgi_line(app, caplog)
    assert result.body == b"written+returned"
    assert record.__dict__["response_bytes"] == len(b"written+returned")


def test_wsgi_file_wrapper_is_returned_unwrapped(caplog: pytest.LogCaptureFixture) -> None:
    returned: list[object] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        wrapper = environ["wsgi.file_wrapper"](io.BytesIO(b"hello"))
        returned.append(wrapper)
        return wrapper  # type: ignore[no-any-return]  # environ values are Any

    environ = make_environ()
    environ["wsgi.file_wrapper"] = FileWrapper
    result, record = _wsgi_line(app, caplog, environ, validate=False)
    assert result.result is returned[0]  # the server's sendfile path still applies
    assert record.__dict__["response_bytes"] == 5


def test_wsgi_context_variable_during_the_call_the_iteration_and_close() -> None:
    seen: list[tuple[str, str | None]] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            seen.append(("iterate", current_request_id()))
            yield b"ok"

        def close(self) -> None:
            seen.append(("close", current_request_id()))

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(("call", current_request_id()))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    result = call_wsgi(WSGIRequestID(app), make_environ())
    request_id = result.headers["x-request-id"]
    assert seen == [("call", request_id), ("iterate", request_id), ("close", request_id)]
    assert current_request_id() is None  # reset between the steps


def test_wsgi_client_without_port_and_script_name(caplog: pytest.LogCaptureFixture) -> None:
    environ = make_environ()
    environ.pop("REMOTE_PORT", None)
    environ["SCRIPT_NAME"] = "/app"
    environ["SERVER_PROTOCOL"] = "HTTP/1.0"
    _, record = _wsgi_line(text_app(b"ok"), caplog, environ)
    assert record.getMessage().startswith('127.0.0.1 - "GET /app/ HTTP/1.0" 200 2 ')


# --- the three together -------------------------------------------------------------------------


def _stack_asgi(app: Any) -> Any:
    return RequestID(BodyLimit(GZip(app), max_body_size=1024))


def _stack_wsgi(app: Any) -> Any:
    return WSGIRequestID(WSGIBodyLimit(WSGIGZip(app), max_body_size=1024))


STACK = (_stack_asgi, _stack_wsgi)


def test_stack_compresses_and_logs(side: str, caplog: pytest.LogCaptureFixture) -> None:
    text = b"stacked middleware " * 100
    request = Request("POST", headers=((b"accept-encoding", b"gzip"),), body=b"small")
    with caplog.at_level(logging.INFO, ACCESS):
        outcome = run(side, STACK, request, Reply(chunks=(text,)))
    assert outcome.header("content-encoding") == "gzip"
    assert decode("gzip", outcome.body) == text
    [record] = _access_records(caplog)
    assert record.__dict__["request_id"] == outcome.header("x-request-id")
    assert record.__dict__["response_bytes"] == len(outcome.body)  # as sent: compressed


def test_stack_refusal_gets_an_id_and_a_line(side: str, caplog: pytest.LogCaptureFixture) -> None:
    request = Request("POST", body=(b"x" * 1000, b"x" * 1000))
    with caplog.at_level(logging.INFO, ACCESS):
        outcome = run(side, STACK, request)
    assert outcome.status == 413
    assert outcome.header("x-request-id") is not None
    [record] = _access_records(caplog)
    assert record.__dict__["http_status"] == 413


# --- issue 19, item 7: the record attributes are escaped like the message ----------------------


def test_asgi_record_attributes_cannot_forge_a_line(caplog: pytest.LogCaptureFixture) -> None:
    # No raw_path from the server: the decoded path, CR/LF and all, is what gets logged. A
    # formatter using %(http_method)s %(http_path)s must not write a second line.
    scope = http_scope('G\nE"T', '/a\r\nINFO forged "x"\u2028', client=("10.0.0.1\n", 1))
    scope["raw_path"] = None
    _, record = _asgi_line(_plain_asgi, caplog, scope=scope)
    formatted = logging.Formatter("%(client_addr)s %(http_method)s %(http_path)s").format(record)
    assert "\n" not in formatted
    assert "\r" not in formatted
    assert "\u2028" not in formatted
    assert record.__dict__["http_method"] == 'G\\x0aE\\"T'
    assert record.__dict__["http_path"] == '/a\\x0d\\x0aINFO forged \\"x\\"\\u2028'
    assert record.__dict__["client_addr"] == "10.0.0.1\\x0a:1"


def test_wsgi_record_attributes_cannot_forge_a_line(caplog: pytest.LogCaptureFixture) -> None:
    # A server that passes a method with a newline on (validator() would refuse it first).
    environ = make_environ("G\nET", "/a\r\nINFO forged")
    with caplog.at_level(logging.INFO, ACCESS):
        call_wsgi(WSGIRequestID(text_app(b"ok")), environ, validate=False)
    [record] = _access_records(caplog)
    assert "\n" not in record.__dict__["http_method"]
    assert record.__dict__["http_method"] == "G\\x0aET"
    assert "\r" not in record.__dict__["http_path"]
    assert "\n" not in record.__dict__["http_path"]


# --- issue 19, item 9: trust is a list of peers --------------------------------------------------


def test_trust_incoming_true_is_deprecated_for_a_peer_list(side: str) -> None:
    cls: Any = RequestID if side == "asgi" else WSGIRequestID
    with pytest.warns(DeprecationWarning, match=r"trust_incoming=\['127.0.0.1', '::1'\]") as info:
        cls(text_app(b"ok"), trust_incoming=True)
    assert info[0].filename == __file__  # points at the caller's line
    # It keeps its meaning meanwhile: every peer.
    request = Request(headers=_incoming(b"anyone-1"), client=("203.0.113.9", 40000))
    with pytest.warns(DeprecationWarning, match="trust_incoming"):
        reply = run(side, PAIR, request, trust_incoming=True)
    assert reply.header("x-request-id") == "anyone-1"


def test_the_nginx_peer_list_trusts_only_nginx(side: str) -> None:
    # The docs' nginx example: an id nginx set is reused, one a client sent to the app port
    # directly is not.
    nginx = ["127.0.0.1", "::1"]
    via_nginx = Request(headers=_incoming(b"from-nginx-1"), client=("127.0.0.1", 40000))
    assert run(side, PAIR, via_nginx, trust_incoming=nginx).header("x-request-id") == (
        "from-nginx-1"
    )
    direct = Request(headers=_incoming(b"chosen-by-client"), client=("203.0.113.9", 40000))
    replaced = run(side, PAIR, direct, trust_incoming=nginx).header("x-request-id")
    assert replaced is not None
    assert HEX32.fullmatch(replaced)
