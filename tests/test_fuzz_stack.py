"""Fuzz: random requests and responses through the documented middleware stack, both sides.

The stack is the one ``docs/middleware.md`` shows behind nginx (ProxyHeaders, RequestID,
TrustedHosts, OriginCheck, BodyLimit, GZip, with padding on one side of the draw). The
application is spec-conformant but random: status, headers, body, whether it reads the request
body. Whatever the request, the server gets a well-formed response (or a crossgate error): see
`tests._fuzz`.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from crossgate.exceptions import CrossgateError
from crossgate.middleware.body_limit import BodyLimit, WSGIBodyLimit
from crossgate.middleware.gzip import GZip, WSGIGZip
from crossgate.middleware.origin_check import OriginCheck, WSGIOriginCheck
from crossgate.middleware.proxy_headers import ProxyHeaders, WSGIProxyHeaders
from crossgate.middleware.request_id import RequestID, WSGIRequestID
from crossgate.middleware.trusted_hosts import TrustedHosts, WSGITrustedHosts
from crossgate.sansio.environ import build_environ
from crossgate.testing import call_http, call_websocket
from crossgate.types import ASGIReceive, ASGISend, StartResponse, WSGIEnvironment
from tests._fuzz import (
    as_pairs,
    body_chunks,
    check_framing,
    check_header_pairs,
    clients,
    request_headers,
)

# Each example costs a millisecond or two: more of them than the adapters' properties get.
STACK = settings(max_examples=300, deadline=None)

_HOSTS = ["example.com", "www.example.com"]
_ORIGINS = ["https://example.com"]
_TRUSTED = ["127.0.0.1", "::1", "10.0.0.0/8"]
_LIMIT = 100
# Response headers a conformant app may send (values without CR, LF or NUL; names lower-case).
_APP_HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-type", b"image/png"),
    (b"content-encoding", b"gzip"),
    (b"accept-ranges", b"bytes"),
    (b"etag", b'"v1"'),
    (b"vary", b"Cookie"),
    (b"cache-control", b"no-transform"),
    (b"set-cookie", b"a=1; Path=/"),
    (b"x-request-id", b"from-app"),
]


@dataclass(frozen=True)
class Script:
    """What the random application does."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    chunks: tuple[bytes, ...]
    declare_length: bool
    read_body: bool

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        headers = list(self.headers)
        if self.declare_length and self.status not in (204, 304):
            headers.append((b"content-length", str(len(self.body)).encode()))
        return headers

    @property
    def body(self) -> bytes:
        return b"" if self.status in (204, 304) else b"".join(self.chunks)


scripts = st.builds(
    Script,
    status=st.sampled_from([200, 201, 204, 206, 301, 304, 404, 500]),
    headers=st.lists(st.sampled_from(_APP_HEADERS), max_size=4).map(tuple),
    chunks=body_chunks.map(tuple),
    declare_length=st.booleans(),
    read_body=st.booleans(),
)

methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"])


@st.composite
def stack_headers(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    """Mostly requests the stack lets through (one allowed Host, a same-site Origin), so the
    application and GZip are reached too; random headers besides, a second Host sometimes."""
    headers = draw(request_headers)
    if draw(st.integers(0, 9)) > 1:
        headers = [(k, v) for k, v in headers if k not in (b"host", b"origin")]
        headers.insert(0, (b"host", draw(st.sampled_from([b"example.com", b"www.example.com"]))))
        if draw(st.booleans()):
            headers.append((b"origin", b"https://example.com"))
        if draw(st.booleans()):
            headers.append((b"accept-encoding", b"gzip"))
    return headers


request_bodies = st.lists(st.binary(max_size=80), max_size=3)


class _Holder:
    script: Script | None = None
    answered = False  # the app sent its response start (no middleware answered instead)


_current = _Holder()


async def _asgi_app(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
    script = _current.script
    assert script is not None
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        return
    if script.read_body:
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                break
    _current.answered = True
    await send(
        {
            "type": "http.response.start",
            "status": script.status,
            "headers": script.response_headers(),
        }
    )
    chunks = () if script.status in (204, 304) else script.chunks
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _asgi_stack(padding: int) -> Any:
    app: Any = GZip(_asgi_app, max_random_bytes=padding, brotli=False if padding else None)
    app = BodyLimit(app, max_body_size=_LIMIT)
    app = OriginCheck(app, allowed_origins=_ORIGINS, protocols=("websocket", "http"))
    app = TrustedHosts(app, allowed_hosts=_HOSTS, redirect_to="example.com")
    app = RequestID(app, trust_incoming=_TRUSTED)
    return ProxyHeaders(app, trusted=_TRUSTED)


_ASGI_STACKS = {0: _asgi_stack(0), 100: _asgi_stack(100)}


def _scope(
    method: str, path: str, headers: list[tuple[bytes, bytes]], client: Any, scheme: str
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": b"q=1",
        "root_path": "",
        "headers": headers,
        "client": client,
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }


def _decoded(headers: Iterable[tuple[bytes, bytes]], body: bytes) -> bytes | None:
    """The body with the stack's gzip undone; ``None`` when the app set the coding itself."""
    codings = [v for k, v in headers if k.lower() == b"content-encoding"]
    if not codings:
        return body
    if codings == [b"gzip"]:
        try:
            return gzip.decompress(body)
        except (OSError, EOFError, zlib.error):
            return None
    return None


@STACK
@given(
    script=scripts,
    method=methods,
    path=st.text(max_size=12).map(lambda t: "/" + t),
    headers=stack_headers(),
    client=clients,
    scheme=st.sampled_from(["http", "https"]),
    body=request_bodies,
    padding=st.sampled_from([0, 100]),
)
def test_asgi_stack(
    script: Script,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    client: Any,
    scheme: str,
    body: list[bytes],
    padding: int,
) -> None:
    _current.script = script
    _current.answered = False
    scope = _scope(method, path, headers, client, scheme)
    # An empty list would send no http.request at all (a driver artefact, not a request).
    chunks = body or [b""]
    result = asyncio.run(call_http(_ASGI_STACKS[padding], scope, body=chunks, timeout=10.0))
    assert result.error is None or isinstance(result.error, CrossgateError), result.error
    assert result.status is not None
    check_header_pairs(result.headers)
    check_framing(
        result.headers,
        result.body,
        status=result.status,
        head=method == "HEAD",
        complete=result.complete,
    )
    app_answered = _current.answered
    event(f"asgi: {'app answered' if app_answered else f'refused {result.status}'}")
    app_coded = any(k == b"content-encoding" for k, _ in script.headers)
    if app_answered and result.complete and method != "HEAD" and not app_coded:
        decoded = _decoded(result.headers, result.body)
        if decoded is not None:
            assert result.status == script.status
            assert decoded == script.body


# --- WSGI --------------------------------------------------------------------------------------


def _wsgi_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    script = _current.script
    assert script is not None
    if script.read_body:
        environ["wsgi.input"].read()
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in script.response_headers()]
    reason = "Whatever"
    start_response(f"{script.status} {reason}", headers)
    return [] if script.status in (204, 304) else list(script.chunks)


def _wsgi_stack(padding: int) -> Any:
    app: Any = WSGIGZip(_wsgi_app, max_random_bytes=padding, brotli=False if padding else None)
    app = WSGIBodyLimit(app, max_body_size=_LIMIT)
    app = WSGIOriginCheck(app, allowed_origins=_ORIGINS, protocols=("http",))
    app = WSGITrustedHosts(app, allowed_hosts=_HOSTS, redirect_to="example.com")
    app = WSGIRequestID(app, trust_incoming=_TRUSTED)
    return WSGIProxyHeaders(app, trusted=_TRUSTED)


_WSGI_STACKS = {0: _wsgi_stack(0), 100: _wsgi_stack(100)}


@STACK
@given(
    script=scripts,
    method=methods,
    path=st.text(max_size=12).map(lambda t: "/" + t),
    headers=stack_headers(),
    client=clients,
    scheme=st.sampled_from(["http", "https"]),
    body=st.binary(max_size=200),
    padding=st.sampled_from([0, 100]),
)
def test_wsgi_stack(
    script: Script,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    client: Any,
    scheme: str,
    body: bytes,
    padding: int,
) -> None:
    _current.script = script
    try:
        environ = build_environ(_scope(method, path, headers, client, scheme))
    except CrossgateError:
        return  # refused before any WSGI app runs (WSGIToASGI answers it): not this test's
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.errors"] = io.StringIO()
    seen: dict[str, Any] = {}

    def start_response(
        status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        seen["status"], seen["headers"] = status, response_headers
        return lambda data: None

    iterable = _WSGI_STACKS[padding](environ, start_response)
    try:
        out = b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    status = int(seen["status"][:3])
    pairs = as_pairs(seen["headers"])
    event(f"wsgi: status {status}")
    check_header_pairs(pairs)
    check_framing(pairs, out, status=status, head=method == "HEAD", complete=True)


@STACK
@given(
    path=st.text(max_size=12).map(lambda t: "/" + t),
    headers=stack_headers(),
    client=clients,
    scheme=st.sampled_from(["ws", "wss"]),
    denial=st.booleans(),
)
def test_asgi_stack_websocket(
    path: str, headers: list[tuple[bytes, bytes]], client: Any, scheme: str, denial: bool
) -> None:
    # A handshake is accepted or refused (a close, or a denial response with the extension),
    # never an exception; a denial response carries clean headers.
    _current.script = Script(200, (), (), declare_length=False, read_body=False)
    scope = _scope("GET", path, headers, client, scheme)
    scope["type"] = "websocket"
    scope.pop("method")
    if denial:
        scope["extensions"] = {"websocket.http.response": {}}
    sent = asyncio.run(call_websocket(_ASGI_STACKS[0], scope, timeout=10.0))
    kinds = [message["type"] for message in sent]
    assert kinds in (
        ["websocket.accept", "websocket.close"],
        ["websocket.close"],
        ["websocket.http.response.start", "websocket.http.response.body"],
    ), kinds
    event(f"websocket: {kinds[0]}")
    if kinds[0] == "websocket.http.response.start":
        check_header_pairs(sent[0]["headers"])
        check_framing(
            sent[0]["headers"], sent[1]["body"], status=sent[0]["status"], head=False, complete=True
        )
