"""`OriginCheck` / `WSGIOriginCheck`: websockets on ASGI, unsafe HTTP requests on both sides."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from crossgate.middleware.origin_check import OriginCheck, WSGIOriginCheck
from crossgate.testing import call_lifespan, call_websocket, http_scope
from crossgate.types import ASGIReceive, ASGISend, StartResponse, WSGIEnvironment
from tests.middleware._counting import CountingHeaders
from tests.middleware._sides import Request, run

ORIGIN = (OriginCheck, WSGIOriginCheck)
ALLOWED = ["https://example.com", "https://*.example.org", "http://localhost:*"]
# One options dict for both sides: the WSGI sibling ignores "websocket".
BOTH: dict[str, Any] = {"allowed_origins": ALLOWED, "protocols": ("websocket", "http")}


def ws(*origins: bytes, **fields: Any) -> Request:
    headers = (
        (b"user-agent", b"test"),
        *((b"origin", o) for o in origins),
        (b"host", b"app.example.net"),
    )
    return Request(type="websocket", scheme="wss", headers=headers, auto_host=False, **fields)


def post(*origins: bytes, method: str = "POST", **fields: Any) -> Request:
    headers = (
        (b"user-agent", b"test"),
        *((b"origin", o) for o in origins),
        (b"host", b"app.example.net"),
    )
    return Request(method=method, scheme="https", headers=headers, auto_host=False, **fields)


# --- websockets (ASGI) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        b"https://example.com",
        b"https://example.com:443",
        b"https://a.example.org",
        b"https://a.b.example.org",
        b"http://localhost:5173",
        b"https://app.example.net",  # the request's own origin
    ],
)
def test_allowed_websocket_origins(origin: bytes) -> None:
    outcome = run("asgi", ORIGIN, ws(origin), allowed_origins=ALLOWED)
    assert outcome.status == 101
    assert outcome.seen is not None


@pytest.mark.parametrize(
    ("origins", "reason"),
    [
        ((b"null",), "Origin null is not allowed"),
        ((), "missing Origin header"),
        ((b"https://evil.com",), "origin 'https://evil.com' is not allowed"),
        ((b"http://example.com",), "origin 'http://example.com' is not allowed"),  # scheme
        ((b"https://example.com:8443",), "origin 'https://example.com:8443' is not allowed"),
        ((b"https://example.org",), "is not allowed"),  # the wildcard's bare domain
        ((b"https://example.com/",), "an origin has no path"),
        ((b"https://example.com/app",), "an origin has no path"),
        ((b"https://evil.com:80@example.com",), "invalid Origin header"),
        ((b"https://example.com\r\nX: y",), "invalid Origin header"),
        ((b"https://example.com", b"https://evil.com"), "more than one Origin header"),
    ],
)
def test_refused_websocket_closes_before_accept(
    origins: tuple[bytes, ...], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="crossgate.middleware"):
        outcome = run("asgi", ORIGIN, ws(*origins), allowed_origins=ALLOWED)
    assert outcome.status == 403
    assert outcome.seen is None
    close = outcome.messages[0]
    assert close["type"] == "websocket.close"
    assert reason in close["reason"]
    assert len(close["reason"].encode()) <= 123  # RFC 6455 section 5.5: a control frame's limit
    logged = [r.getMessage() for r in caplog.records]
    assert any(reason in message for message in logged)


def test_refused_websocket_gets_a_403_denial_when_the_server_offers_it() -> None:
    request = ws(b"https://evil.com", extensions={"websocket.http.response": {}})
    outcome = run("asgi", ORIGIN, request, allowed_origins=ALLOWED)
    assert outcome.status == 403
    assert "origin 'https://evil.com' is not allowed" in outcome.text
    assert [m["type"] for m in outcome.messages] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]


def test_allow_missing() -> None:
    outcome = run("asgi", ORIGIN, ws(), allowed_origins=ALLOWED, allow_missing=True)
    assert outcome.status == 101
    assert (
        run("asgi", ORIGIN, ws(b"null"), allowed_origins=ALLOWED, allow_missing=True).status == 403
    )


def test_null_when_listed() -> None:
    assert run("asgi", ORIGIN, ws(b"null"), allowed_origins=["null"]).status == 101


def test_same_origin_can_be_turned_off() -> None:
    request = ws(b"https://app.example.net")
    assert run("asgi", ORIGIN, request, allowed_origins=[], allow_same_origin=False).status == 403


def test_http_is_not_checked_by_default_on_asgi() -> None:
    outcome = run("asgi", ORIGIN, post(b"https://evil.com"), allowed_origins=ALLOWED)
    assert outcome.status == 200


# --- unsafe HTTP requests (both sides) -------------------------------------------------------


@pytest.mark.parametrize(
    ("origins", "method", "status"),
    [
        ((b"https://example.com",), "POST", 200),
        ((b"https://app.example.net",), "POST", 200),  # same origin
        ((b"https://evil.com",), "GET", 200),  # safe methods are not checked
        ((b"https://evil.com",), "HEAD", 200),
        ((b"https://evil.com",), "OPTIONS", 200),
        ((b"https://evil.com",), "POST", 403),
        ((b"https://evil.com",), "PUT", 403),
        ((b"https://evil.com",), "PATCH", 403),
        ((b"https://evil.com",), "DELETE", 403),
        ((b"null",), "POST", 403),
        ((), "POST", 403),
        ((b"https://example.com/form",), "POST", 403),
        ((b"http://example.com",), "POST", 403),
        ((b"https://example.com:8443",), "POST", 403),
        ((b"https://example.com", b"https://evil.com"), "POST", 403),
    ],
)
def test_unsafe_http_requests(
    side: str, origins: tuple[bytes, ...], method: str, status: int
) -> None:
    outcome = run(side, ORIGIN, post(*origins, method=method), **BOTH)
    assert outcome.status == status
    assert (outcome.seen is not None) is (status == 200)
    if status == 403:
        assert outcome.text.startswith("403 Forbidden: ")


def test_refusal_reasons_are_the_same_on_both_sides(side: str) -> None:
    outcome = run(side, ORIGIN, post(b"https://evil.com", b"null"), **BOTH)
    assert outcome.text == "403 Forbidden: more than one Origin header\n"


def test_same_origin_needs_a_single_host(side: str) -> None:
    request = Request(
        method="POST",
        scheme="https",
        headers=(
            (b"origin", b"https://app.example.net"),
            (b"host", b"app.example.net"),
            (b"host", b"app.example.net"),
        ),
    )
    outcome = run(side, ORIGIN, request, **BOTH)
    assert outcome.status == 403


def test_http_allow_missing(side: str) -> None:
    outcome = run(side, ORIGIN, post(), allow_missing=True, **BOTH)
    assert outcome.status == 200


@pytest.mark.parametrize("protocols", [{}, {"protocols": ("websocket",)}])
def test_wsgi_refuses_a_configuration_that_checks_nothing(protocols: dict[str, Any]) -> None:
    # The defaults are the same on both sides (websockets only), so left out, the WSGI sibling
    # would check nothing: it says so rather than silently checking HTTP on one side only.
    with pytest.raises(ValueError, match="only sees HTTP requests"):
        WSGIOriginCheck(_never_wsgi, allowed_origins=ALLOWED, **protocols)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"allowed_origins": "https://example.com"}, "must be a list"),
        ({"allowed_origins": ["example.com"]}, "invalid allowed origin"),
        ({"allowed_origins": [], "protocols": ("ftp",)}, "protocols must be"),
    ],
)
def test_configuration_errors(side: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _build(side, options)


def _build(side: str, options: dict[str, Any]) -> object:
    if side == "asgi":
        return OriginCheck(_never, **options)
    return WSGIOriginCheck(_never_wsgi, **options)


async def _never(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
    raise AssertionError("the app must not run")  # pragma: no cover


def _never_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    raise AssertionError("the app must not run")  # pragma: no cover


def test_lifespan_passes_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        seen.append(scope["type"])
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    middleware = OriginCheck(app, allowed_origins=[], protocols=("websocket", "http"))
    result = asyncio.run(call_lifespan(middleware))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert seen == ["lifespan"]


def test_unknown_scopes_pass_through() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        seen.append(scope)

    custom = {"type": "custom", "headers": [(b"origin", b"https://evil.com")]}
    middleware = OriginCheck(app, allowed_origins=[], protocols=("websocket", "http"))
    asyncio.run(middleware(custom, _no_receive, _no_send))
    assert seen == [custom]


async def _no_receive() -> Any:
    raise AssertionError("not called")  # pragma: no cover


async def _no_send(message: Any) -> None:
    raise AssertionError("not called")  # pragma: no cover


@pytest.mark.parametrize("name", [b"origin", b"host"])
def test_a_flood_of_origin_or_host_lines_is_refused_after_reading_few(name: bytes) -> None:
    # Issue 19, item 3: 100,000 Origin (or Host) lines were joined one by one, in quadratic
    # time. Two Origins are refused whatever follows; two Hosts match no origin. The Origin
    # lines are read up to the second one; the Host lines likewise.
    flood = [(name, b"https://evil.example" if name == b"origin" else b"evil.example")] * 100_000
    extra = [] if name == b"origin" else [(b"origin", b"https://evil.example")]
    headers = CountingHeaders([*extra, *flood])
    called: list[object] = []

    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        called.append(scope)

    scope = http_scope(type="websocket")
    scope["headers"] = headers
    sent = asyncio.run(call_websocket(OriginCheck(app, allowed_origins=ALLOWED), scope))
    assert called == []
    assert sent[0]["type"] == "websocket.close"
    if name == b"origin":
        assert headers.read == 2
    else:  # one pass for the one Origin (a second could follow), then up to the second Host
        assert headers.read <= len(headers) + 3


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        ({"type": "websocket.connect"}, ["websocket.close"]),
        ({"type": "websocket.disconnect", "code": 1001}, []),
    ],
)
def test_a_refused_websocket_answers_the_connect_event(first: Any, expected: list[str]) -> None:
    # The refusal answers websocket.connect (ASGI spec, "Connect - receive event"); a client
    # that left before the handshake gets nothing.
    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        raise AssertionError("not called")  # pragma: no cover

    received: list[Any] = []
    sent: list[Any] = []

    async def receive() -> Any:
        received.append(first)
        return first

    async def send(message: Any) -> None:
        sent.append(message)

    scope = http_scope(type="websocket", headers=[(b"origin", b"https://evil.example")])
    asyncio.run(OriginCheck(app, allowed_origins=ALLOWED)(scope, receive, send))
    assert [m["type"] for m in sent] == expected
    assert len(received) == 1
