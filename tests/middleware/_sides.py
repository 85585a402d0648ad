"""Run one request description through a middleware on both sides and compare what happened.

Every middleware in `crossgate.middleware` has an ASGI class and a WSGI sibling with the same
options, fed by the same sans-IO decision. The tables in this package describe a request once
(`Request`) and run it through

* ``"asgi"``: the ASGI class around a recording ASGI app, driven by `crossgate.testing.call_http`
  (or `call_websocket` for a websocket request), every message checked for ASGI conformance;
* ``"wsgi"``: the WSGI sibling around a recording WSGI app, the environ built from the very same
  scope by `crossgate.sansio.environ.build_environ` (what `WSGIToASGI` would give the app). Both
  the inner app and the middleware are wrapped in `wsgiref.validate.validator`, so the environ the
  middleware hands on and the response it returns are checked against PEP 3333, and a missed
  ``close()`` fails the test.

Both return an `Outcome` in one normalized shape, so that a case table can be parametrized over
`SIDES` and assert the same thing on each. Side-specific facts (``raw_path``, ``REMOTE_PORT``)
stay reachable through `Seen.scope` / `Seen.environ`.

Websocket requests exist only on the ASGI side (PEP 3333 has no websocket); `run` raises
`SideUnsupported` for them on the WSGI side, and `skip_unsupported` turns that into a skip.

Example:

```python
PROXY = (ProxyHeaders, WSGIProxyHeaders)


def test_spoofing(side: str) -> None:  # the conftest's ``side`` fixture: once per side
    request = Request(headers=((b"x-forwarded-for", b"1.2.3.4"),), client=("203.0.113.9", 1))
    outcome = run(side, PROXY, request, trusted=["10.0.0.0/8"])
    assert outcome.seen is not None
    assert outcome.seen.client == ("203.0.113.9", 1)
```
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal
from wsgiref.validate import validator

import pytest

from crossgate.sansio.environ import build_environ
from crossgate.testing import call_http, call_websocket, http_scope
from crossgate.types import (
    ASGIReceive,
    ASGISend,
    Message,
    StartResponse,
    WSGIApplication,
    WSGIEnvironment,
)

__all__ = [
    "SIDES",
    "Outcome",
    "Reply",
    "Request",
    "Seen",
    "Side",
    "SideUnsupported",
    "asgi_headers",
    "call_wsgi",
    "environ_header_dict",
    "run",
    "run_asgi",
    "run_wsgi",
    "skip_unsupported",
]

Side = Literal["asgi", "wsgi"]
SIDES: tuple[Side, ...] = ("asgi", "wsgi")

# A middleware constructor: ``ProxyHeaders`` / ``WSGIProxyHeaders`` and their siblings, called as
# ``factory(app, **options)``.
Factory = Callable[..., Any]


class SideUnsupported(Exception):
    """The request cannot be expressed on this side (a websocket on WSGI)."""


_FRAMING = (b"content-length", b"transfer-encoding")


@dataclass(frozen=True)
class Request:
    """One request, as the server hands it to the outermost app.

    ``path`` includes ``root_path``, as the current ASGI spec says. A ``host`` header made from
    ``server`` is added unless ``headers`` has one or ``auto_host`` is false (to test a request
    with no Host at all). ``type`` is ``"http"`` or ``"websocket"``.
    """

    method: str = "GET"
    path: str = "/"
    query: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes | tuple[bytes, ...] = b""
    client: tuple[str, int] | None = ("127.0.0.1", 50000)
    scheme: str = "http"
    server: tuple[str, int | None] | None = ("127.0.0.1", 8000)
    root_path: str = ""
    raw_path: bytes | None = None
    type: str = "http"
    auto_host: bool = True
    extensions: Mapping[str, dict[object, object]] = field(default_factory=dict)

    def scope(self) -> dict[str, Any]:
        """The ASGI scope a server would build for this request (a fresh dict every call)."""
        scope = http_scope(
            self.method,
            self.path,
            query_string=self.query,
            headers=self.headers,
            raw_path=self.raw_path,
            root_path=self.root_path,
            scheme=self.scheme,
            client=self.client,
            server=self.server,
            extensions={k: dict(v) for k, v in self.extensions.items()},
            type=self.type,
        )
        if not self.auto_host:
            scope["headers"] = [(bytes(k).lower(), bytes(v)) for k, v in self.headers]
        framed = any(bytes(k).lower() in _FRAMING for k, _ in self.headers)
        if self.body_bytes and not framed and self.type == "http":
            # A body with no Content-Length came chunked, and an HTTP/1 server says so.
            scope["headers"] = [*scope["headers"], (b"transfer-encoding", b"chunked")]
        return scope

    def environ(self) -> dict[str, Any]:
        """The environ `WSGIToASGI` would give a WSGI app for this request, with the streams."""
        if self.type != "http":
            raise SideUnsupported(f"a {self.type} request has no WSGI form")
        environ = build_environ(self.scope())
        environ["wsgi.input"] = io.BytesIO(self.body_bytes)
        environ["wsgi.errors"] = io.StringIO()
        return environ

    @property
    def body_bytes(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else b"".join(self.body)


@dataclass(frozen=True)
class Reply:
    """What the inner app answers when the request reaches it.

    ``chunks`` are sent as separate body messages (ASGI) or yielded one by one (WSGI).
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/plain"),)
    chunks: tuple[bytes, ...] = (b"ok",)


@dataclass
class Seen:
    """What the inner app saw, normalized so both sides compare equal.

    Attributes:
        client: ``(host, port)`` of the client; ``port`` is ``None`` when unknown (ASGI port 0,
            or no ``REMOTE_PORT`` in the environ); ``None`` when there is no client address
            (a Unix socket: ASGI ``client`` None, empty ``REMOTE_ADDR``).
        scheme: ``http`` / ``https`` (``ws`` / ``wss`` for a websocket scope).
        host: the ``Host`` header, or ``None``.
        server: ``(name, port)``; ``port`` as an int, or ``None`` when unknown.
        root_path: ``root_path`` (ASGI) / ``SCRIPT_NAME`` (WSGI).
        path: the full path, ``root_path`` included (ASGI ``path`` / WSGI
            ``SCRIPT_NAME + PATH_INFO``).
        headers: request headers, lower-case names, repeated ones joined with ``", "``.
        body: the request body the app read.
        scope: the ASGI scope as the app got it (ASGI side), else ``None``.
        environ: the environ as the app got it (WSGI side), else ``None``.
    """

    client: tuple[str, int | None] | None
    scheme: str
    host: str | None
    server: tuple[str, int | None] | None
    root_path: str
    path: str
    headers: dict[str, str]
    body: bytes
    scope: dict[str, Any] | None = None
    environ: dict[str, Any] | None = None


@dataclass
class Outcome:
    """What the client got, and what the inner app saw (``seen`` is ``None`` if never called).

    For a websocket, ``status`` is 101 when the app accepted, 403 when the handshake was closed
    before accept (servers answer that with 403, ASGI spec websocket "Close - send event"), or
    the status of a ``websocket.http.response`` denial; ``messages`` holds what was sent.
    """

    side: Side
    status: int | None
    headers: list[tuple[str, str]]
    body: bytes
    seen: Seen | None
    messages: list[Message] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The first response header ``name`` (case-insensitive), or ``None``."""
        key = name.lower()
        for k, v in self.headers:
            if k == key:
                return v
        return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def asgi_headers(headers: Iterable[Sequence[bytes]]) -> dict[str, str]:
    """ASGI header pairs as a dict of lower-case names, repeated values joined with ``", "``."""
    result: dict[str, str] = {}
    for name, value in headers:
        key = bytes(name).decode("latin-1").lower()
        text = bytes(value).decode("latin-1")
        result[key] = f"{result[key]}, {text}" if key in result else text
    return result


def environ_header_dict(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request headers of an environ as `asgi_headers` gives them."""
    result: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            result[key[5:].lower().replace("_", "-")] = value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            result[key.lower().replace("_", "-")] = value
    return result


def _port(value: object) -> int | None:
    if value is None or value == "" or value == 0:
        return None
    return int(str(value))


def _seen_from_scope(scope: Mapping[str, Any], body: bytes) -> Seen:
    headers = asgi_headers(scope.get("headers") or ())
    client = scope.get("client")
    server = scope.get("server")
    return Seen(
        client=None if client is None else (str(client[0]), _port(client[1])),
        scheme=str(scope["scheme"]),
        host=headers.get("host"),
        server=None if server is None else (str(server[0]), _port(server[1])),
        root_path=str(scope.get("root_path", "")),
        path=str(scope["path"]),
        headers=headers,
        body=body,
        scope=dict(scope),
    )


def _seen_from_environ(environ: Mapping[str, Any], body: bytes) -> Seen:
    headers = environ_header_dict(environ)
    address = environ.get("REMOTE_ADDR", "")
    return Seen(
        client=None if not address else (address, _port(environ.get("REMOTE_PORT"))),
        scheme=environ["wsgi.url_scheme"],
        host=headers.get("host"),
        server=(environ["SERVER_NAME"], _port(environ["SERVER_PORT"])),
        root_path=environ.get("SCRIPT_NAME", ""),
        path=environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
        headers=headers,
        body=body,
        environ=dict(environ),
    )


def recording_asgi_app(reply: Reply, seen: list[Seen]) -> Callable[..., Any]:
    """An ASGI app that records its scope and body in ``seen``, then sends ``reply``."""

    async def app(scope: dict[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            seen.append(_seen_from_scope(scope, b""))
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        seen.append(_seen_from_scope(scope, body))
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        for index, chunk in enumerate(reply.chunks):
            more = index < len(reply.chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
        if not reply.chunks:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def recording_wsgi_app(reply: Reply, seen: list[Seen]) -> WSGIApplication:
    """A WSGI app that records its environ and body in ``seen``, then answers ``reply``."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        if length:
            body = stream.read(int(length))
        else:
            # build_environ sets wsgi.input_terminated: read to EOF (validator wants a size).
            body = b""
            while chunk := stream.read(65536):
                body += chunk
        seen.append(_seen_from_environ(environ, body))
        start_response(f"{reply.status} {HTTPStatus(reply.status).phrase}", list(reply.headers))
        return iter(reply.chunks)

    return app


async def _drive_asgi(app: Callable[..., Any], request: Request) -> tuple[Any, list[Message]]:
    if request.type == "websocket":
        return None, await call_websocket(app, request.scope())
    return await call_http(app, request.scope(), body=request.body), []


def run_asgi(factory: Factory, request: Request, reply: Reply = Reply(), **options: Any) -> Outcome:
    """Run ``request`` through ``factory(recording_app, **options)`` as an ASGI app."""
    seen: list[Seen] = []
    app = factory(recording_asgi_app(reply, seen), **options)
    result, messages = asyncio.run(_drive_asgi(app, request))
    observed = seen[0] if seen else None
    if result is None:
        return _websocket_outcome(messages, observed)
    if result.error is not None:
        raise result.error
    return Outcome(
        side="asgi",
        status=result.status,
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in result.headers],
        body=result.body,
        seen=observed,
        messages=result.messages,
    )


def _websocket_outcome(messages: list[Message], seen: Seen | None) -> Outcome:
    kinds = [m["type"] for m in messages]
    status: int | None
    headers: list[tuple[str, str]] = []
    body = b""
    if kinds and kinds[0] == "websocket.accept":
        status = 101
    elif kinds and kinds[0] == "websocket.http.response.start":
        status = messages[0]["status"]
        headers = [
            (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
            for k, v in messages[0].get("headers", ())
        ]
        body = b"".join(m.get("body", b"") for m in messages[1:])
    elif kinds and kinds[0] == "websocket.close":
        status = 403
    else:
        status = None
    return Outcome("asgi", status, headers, body, seen, messages)


def call_wsgi(
    app: WSGIApplication, environ: WSGIEnvironment
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Call a WSGI ``app`` as a server would: status line, headers and body; ``close()`` called.

    The app is wrapped in `wsgiref.validate.validator`, so the environ and the response are
    checked against PEP 3333.
    """
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, headers))
        return lambda data: None  # pragma: no cover - the apps here never call write()

    iterable = validator(app)(environ, start_response)
    try:
        body = b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    status_line, headers = started[-1]
    return status_line, headers, body


def run_wsgi(factory: Factory, request: Request, reply: Reply = Reply(), **options: Any) -> Outcome:
    """Run ``request`` through ``factory(validator(recording_app), **options)`` as WSGI."""
    seen: list[Seen] = []
    app = factory(validator(recording_wsgi_app(reply, seen)), **options)
    status_line, headers, body = call_wsgi(app, request.environ())
    return Outcome(
        side="wsgi",
        status=int(status_line[:3]),
        headers=[(k.lower(), v) for k, v in headers],
        body=body,
        seen=seen[0] if seen else None,
    )


def run(
    side: str,
    middleware: tuple[Factory, Factory],
    request: Request,
    reply: Reply = Reply(),
    **options: Any,
) -> Outcome:
    """Run ``request`` through the ``(ASGI class, WSGI sibling)`` pair on ``side``.

    Raises:
        SideUnsupported: a websocket request on the WSGI side.
    """
    asgi, wsgi = middleware
    if side == "asgi":
        return run_asgi(asgi, request, reply, **options)
    if side == "wsgi":
        return run_wsgi(wsgi, request, reply, **options)
    raise ValueError(f"unknown side {side!r}")


def skip_unsupported(side: str, request: Request) -> None:
    """Skip the current test when ``request`` has no form on ``side``."""
    if side == "wsgi" and request.type != "http":
        pytest.skip(f"a {request.type} request has no WSGI form")
