"""`TrustedHosts` / `WSGITrustedHosts`: each case runs on both sides (see `_sides.py`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from crossgate.middleware.trusted_hosts import TrustedHosts, WSGITrustedHosts
from crossgate.testing import call_http, call_lifespan, http_scope
from crossgate.types import ASGIReceive, ASGISend, StartResponse, WSGIEnvironment
from tests.middleware._counting import CountingHeaders
from tests.middleware._sides import Request, call_wsgi, run

HOSTS = (TrustedHosts, WSGITrustedHosts)
ALLOWED = ["example.com", "*.example.org", "[::1]:8000", "api.example.net:8443", "127.0.0.1"]


def host_request(*hosts: bytes, **fields: Any) -> Request:
    headers = ((b"accept", b"*/*"), *((b"host", h) for h in hosts))
    return Request(headers=headers, auto_host=False, **fields)


@pytest.mark.parametrize(
    ("host", "scheme"),
    [
        (b"example.com", "http"),
        (b"EXAMPLE.com", "http"),  # names are case-insensitive
        (b"example.com.", "http"),  # a trailing dot names the same host
        (b"example.com:8080", "http"),  # a bare name allows any port
        (b"a.example.org", "https"),
        (b"a.b.example.org", "https"),
        (b"[::1]:8000", "http"),  # an IPv6 literal with its port
        (b"[0:0::1]:8000", "http"),
        (b"api.example.net:8443", "https"),
        (b"127.0.0.1:8000", "http"),
    ],
)
def test_allowed_hosts_reach_the_app(side: str, host: bytes, scheme: str) -> None:
    outcome = run(side, HOSTS, host_request(host, scheme=scheme), allowed_hosts=ALLOWED)
    assert outcome.status == 200
    assert outcome.seen is not None
    assert outcome.seen.host == host.decode()  # the header itself is left as sent


@pytest.mark.parametrize(
    ("hosts", "scheme", "reason"),
    [
        ((b"evil.com:80@example.com",), "http", "invalid Host header: not a valid host (bad port)"),
        ((b"example.com@evil.com",), "http", "invalid Host header: not a valid host"),
        ((b"evil.com",), "http", "host 'evil.com' is not allowed"),
        ((b"example.com.evil.com",), "http", "is not allowed"),
        ((b"example.org",), "http", "host 'example.org' is not allowed"),  # bare domain
        ((b"[::1]:8001",), "http", "host '[::1]:8001' is not allowed"),
        ((b"[::1]",), "http", "host '[::1]' is not allowed"),  # port 80, not 8000
        ((b"::1",), "http", "invalid Host header"),
        ((b"api.example.net",), "https", "host 'api.example.net' is not allowed"),  # port 443
        ((b"",), "http", "invalid Host header: empty host"),
        ((b"example.com\r\nX-Injected: 1",), "http", "invalid Host header"),
        ((b"ex\xe4mple.com",), "http", "invalid Host header: host is not ASCII"),
        ((b"example.com", b"example.com"), "http", "more than one Host header"),
        ((b"example.com", b"evil.com"), "http", "more than one Host header"),
        ((), "http", "missing Host header"),
    ],
)
def test_bad_hosts_get_400_with_the_reason(
    side: str,
    hosts: tuple[bytes, ...],
    scheme: str,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="crossgate.middleware"):
        outcome = run(side, HOSTS, host_request(*hosts, scheme=scheme), allowed_hosts=ALLOWED)
    assert outcome.status == 400
    assert outcome.seen is None  # the app never ran
    assert reason in outcome.text
    assert outcome.header("content-type") == "text/plain; charset=utf-8"
    logged = [r.getMessage() for r in caplog.records if r.name == "crossgate.middleware"]
    assert any(reason in message for message in logged)
    assert not any("\r" in message or "\n" in message for message in logged)


def test_a_path_cannot_forge_a_line_in_the_refusal_log(
    side: str, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "/x\r\n2026-01-01 INFO crossgate.middleware forged line"
    request = host_request(b"evil.com", path=forged, raw_path=b"/x%0D%0A2026")
    with caplog.at_level(logging.WARNING, logger="crossgate.middleware"):
        outcome = run(side, HOSTS, request, allowed_hosts=ALLOWED)
    assert outcome.status == 400
    logged = [r.getMessage() for r in caplog.records if r.name == "crossgate.middleware"]
    assert len(logged) == 1
    assert "\r" not in logged[0]
    assert "\n" not in logged[0]
    assert "\\r\\n2026" in logged[0]  # escaped, still readable


@pytest.mark.parametrize(
    ("method", "status"), [("GET", 301), ("HEAD", 301), ("POST", 308), ("DELETE", 308)]
)
def test_redirect_to_the_canonical_host(side: str, method: str, status: int) -> None:
    request = host_request(
        b"www.example.com",
        method=method,
        path="/app/a%20b",
        raw_path=b"/app/a%20b",
        root_path="/app",
        query=b"x=1&y=%2F",
        scheme="https",
    )
    outcome = run(
        side,
        HOSTS,
        request,
        allowed_hosts=["example.com", "www.example.com"],
        redirect_to="example.com",
    )
    assert outcome.status == status
    assert outcome.header("location") == "https://example.com/app/a%20b?x=1&y=%2F"
    assert outcome.seen is None


def test_canonical_host_itself_is_served(side: str) -> None:
    options: dict[str, Any] = {
        "allowed_hosts": ["example.com", "www.example.com"],
        "redirect_to": "example.com",
    }
    assert run(side, HOSTS, host_request(b"example.com"), **options).status == 200
    assert run(side, HOSTS, host_request(b"evil.com"), **options).status == 400


def test_www_redirect(side: str) -> None:
    request = host_request(b"example.com", path="/p", query=b"q")
    outcome = run(side, HOSTS, request, allowed_hosts=["www.example.com"], www_redirect=True)
    assert outcome.status == 301
    assert outcome.header("location") == "http://www.example.com/p?q"


def test_redirect_encodes_what_it_must(side: str) -> None:
    request = host_request(b"www.example.com", path="/café", raw_path=b"/caf%C3%A9")
    options: dict[str, Any] = {
        "allowed_hosts": ["example.com", "www.example.com"],
        "redirect_to": "example.com",
    }
    outcome = run(side, HOSTS, request, **options)
    assert outcome.header("location") == "http://example.com/caf%C3%A9"


def test_asgi_redirect_without_raw_path() -> None:
    scope = http_scope("GET", "/café x", headers=[(b"host", b"www.example.com")])
    del scope["raw_path"]
    app = TrustedHosts(
        _never, allowed_hosts=["example.com", "www.example.com"], redirect_to="example.com"
    )
    result = asyncio.run(call_http(app, scope))
    assert result.status == 301
    assert result.header("location") == "http://example.com/caf%C3%A9%20x"


def test_wsgi_redirect_without_raw_uri() -> None:
    request = Request(path="/a%b", raw_path=b"/a%25b", headers=((b"host", b"www.example.com"),))
    environ = request.environ()
    del environ["RAW_URI"], environ["REQUEST_URI"]
    app = WSGITrustedHosts(
        _never_wsgi, allowed_hosts=["example.com", "www.example.com"], redirect_to="example.com"
    )
    status, headers, _ = call_wsgi(app, environ)
    assert status == "301 Moved Permanently"
    assert ("location", "http://example.com/a%25b") in [(k.lower(), v) for k, v in headers]


async def _never(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
    raise AssertionError("the app must not run")  # pragma: no cover


def _never_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    raise AssertionError("the app must not run")  # pragma: no cover


# --- websockets ------------------------------------------------------------------------------


def test_websocket_with_a_bad_host_is_refused_with_a_close() -> None:
    request = host_request(b"evil.com", type="websocket", scheme="ws")
    outcome = run("asgi", HOSTS, request, allowed_hosts=ALLOWED)
    assert outcome.status == 403  # a close before accept: servers answer 403
    assert outcome.messages[0]["type"] == "websocket.close"
    assert outcome.seen is None


def test_websocket_with_a_bad_host_gets_a_400_denial_when_the_server_offers_it() -> None:
    request = host_request(
        b"evil.com",
        type="websocket",
        scheme="ws",
        extensions={"websocket.http.response": {}},
    )
    outcome = run("asgi", HOSTS, request, allowed_hosts=ALLOWED)
    assert outcome.status == 400
    assert "host 'evil.com' is not allowed" in outcome.text


def test_websocket_is_never_redirected() -> None:
    options: dict[str, Any] = {
        "allowed_hosts": ["example.com", "www.example.com"],
        "redirect_to": "example.com",
    }
    allowed = host_request(b"www.example.com", type="websocket", scheme="wss")
    assert run("asgi", HOSTS, allowed, **options).status == 101
    www = host_request(b"example.com", type="websocket", scheme="wss")
    assert (
        run("asgi", HOSTS, www, allowed_hosts=["www.example.com"], www_redirect=True).status == 403
    )


def test_lifespan_and_unknown_scopes_pass_through() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        seen.append(scope["type"])
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})

    middleware = TrustedHosts(app, allowed_hosts=["example.com"])
    asyncio.run(call_lifespan(middleware))
    asyncio.run(middleware({"type": "custom", "headers": []}, _no_receive, _no_send))
    assert seen == ["lifespan", "custom"]


async def _no_receive() -> Any:
    raise AssertionError("not called")  # pragma: no cover


async def _no_send(message: Any) -> None:
    raise AssertionError("not called")  # pragma: no cover


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"allowed_hosts": "example.com"}, "must be a list"),
        ({"allowed_hosts": []}, "empty"),
        ({"allowed_hosts": ["::1"]}, "brackets"),
        ({"allowed_hosts": ["a.com"], "redirect_to": "b.com"}, "not in allowed_hosts"),
    ],
)
def test_configuration_errors(side: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _build(side, options)


def _build(side: str, options: dict[str, Any]) -> object:
    if side == "asgi":
        return TrustedHosts(_never, **options)
    return WSGITrustedHosts(_never_wsgi, **options)


def test_wsgi_environ_without_scheme_defaults_to_http() -> None:
    environ = Request(headers=((b"host", b"example.com"),)).environ()
    del environ["wsgi.url_scheme"]
    app = WSGITrustedHosts(_never_wsgi, allowed_hosts=["example.com:443"])
    # Not through call_wsgi: wsgiref's validator insists on wsgi.url_scheme.
    started: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append(status)

    body = b"".join(app(environ, start_response))
    assert started == ["400 Bad Request"]
    assert b"host 'example.com' is not allowed" in body


def test_a_flood_of_host_lines_is_refused_after_reading_two() -> None:
    # Issue 19, item 3: 100,000 Host lines (900 KB; uvicorn with httptools caps no header
    # count) were joined one by one, in quadratic time, on the event loop. A second Host is
    # refused whatever follows it (RFC 9112 section 3.2), so reading stops there.
    headers = CountingHeaders([(b"host", b"example.com")] * 100_000)
    called: list[object] = []

    async def app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        called.append(scope)

    scope = http_scope()
    scope["headers"] = headers
    result = asyncio.run(call_http(TrustedHosts(app, allowed_hosts=ALLOWED), scope))
    assert result.status == 400
    assert b"more than one Host header" in result.body
    assert called == []
    assert headers.read == 2
