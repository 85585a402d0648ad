"""`RequestID` / `WSGIRequestID`: one id per request, on the response, in the logs, and one
access line per request through `logging`.

The id is reused from the request's header only when the direct peer is trusted to set it and
the value is safe (`crossgate.sansio.request_id.accept_request_id`), else a fresh one is made.
Both sides take the same options and write the same access line (``_options.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from typing import Any, AnyStr

from crossgate.middleware._common import close_result, first_header
from crossgate.middleware.proxy_headers import PEER_KEY
from crossgate.middleware.request_id._options import (
    SCOPE_KEY,
    AccessRecord,
    RequestIDBase,
    request_id_var,
)
from crossgate.sansio.request_id import asgi_target, wsgi_target
from crossgate.sansio.response import OptExcInfo
from crossgate.types import (
    ASGIApp,
    ASGIReceive,
    ASGISend,
    Message,
    StartResponse,
    WSGIApplication,
    WSGIEnvironment,
)

__all__ = ["RequestID", "RequestIDFilter", "WSGIRequestID", "current_request_id", "request_id_var"]

# The messages that carry response headers, where the id goes (ASGI spec: HTTP "Response Start",
# WebSocket "Accept" and the "WebSocket Denial Response" extension).
_STARTS = frozenset({"http.response.start", "websocket.http.response.start", "websocket.accept"})


def current_request_id() -> str | None:
    """The id of the request being handled in this context, or ``None``."""
    return request_id_var.get()


class RequestIDFilter(logging.Filter):
    """A `logging.Filter` that sets ``record.request_id`` on every record it sees.

    The value is the current request's id, or ``default`` outside a request; a record that
    already carries one (the access line) keeps it. It never drops a record. Attach it to a
    handler, and use ``%(request_id)s`` in its format.
    """

    def __init__(self, name: str = "", *, default: str = "-") -> None:
        super().__init__(name)
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get() or self.default
        return True


def _with_header(
    headers: Iterable[tuple[AnyStr, AnyStr]], pair: tuple[AnyStr, AnyStr]
) -> list[tuple[AnyStr, AnyStr]]:
    name = pair[0].lower()
    kept = [h for h in headers if h[0].lower() != name]
    kept.append(pair)
    return kept


class RequestID(RequestIDBase[ASGIApp]):
    """ASGI middleware: a request id per ``http`` and ``websocket`` request, and access lines.

    Args:
        app: the ASGI application.
        header: the request and response header carrying the id.
        trust_incoming: whose incoming id to reuse: ``False`` (nobody), or the direct peers
            (addresses, networks, ``"unix"``, ``"*"``; behind `ProxyHeaders`, the proxy it
            believed) such as ``["127.0.0.1", "::1"]``. ``True`` (everybody) is deprecated.
        access_log: write one line per request at INFO.
        logger: the logger (or its name) for the access lines.
        max_id_length: incoming ids longer than this are replaced.

    The id goes into ``scope["crossgate.request_id"]`` and the request and response headers,
    and is `current_request_id` while the app runs; the access line is written when the app
    returns or raises. Other scope types pass through untouched.

    Raises:
        ValueError: ``header`` is not a valid header name, a peer is not an address or network,
            or ``max_id_length`` is under 1.
    """

    async def __call__(self, scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        name = self.name
        headers = scope["headers"]
        client = scope.get("client")
        # Behind ProxyHeaders, trust is about the proxy that spoke, not the client it reported.
        peer = scope[PEER_KEY] if PEER_KEY in scope else (client[0] if client else None)
        request_id = self.choose(
            peer, None if self.trusted is None else first_header(headers, name)
        )
        pair = (name, request_id.encode("ascii"))
        headers = [h for h in headers if h[0] != name]
        headers.append(pair)
        scope = {**scope, "headers": headers, SCOPE_KEY: request_id}
        watch = _ASGIAccess(self, scope, pair, receive, send)
        token = request_id_var.set(request_id)
        try:
            await self.app(scope, watch.receive, watch.send)
        except asyncio.CancelledError:
            watch.cancelled = True
            raise
        except Exception:
            watch.error = True
            raise
        finally:
            watch.finish()
            request_id_var.reset(token)


class _ASGIAccess(AccessRecord):
    """`RequestID`'s ``receive`` and ``send`` for one request: the id goes on, the counts in."""

    __slots__ = ("_receive", "_send", "pair", "scope")

    def __init__(
        self,
        middleware: RequestID,
        scope: Any,
        pair: tuple[bytes, bytes],
        receive: ASGIReceive,
        send: ASGISend,
    ) -> None:
        super().__init__(middleware, scope[SCOPE_KEY])
        self.scope = scope
        self.pair = pair
        self._receive = receive
        self._send = send

    def request_line(self) -> tuple[str | None, str, str, str, str]:
        scope = self.scope
        client = scope.get("client")
        raw_path = scope.get("raw_path")
        return (
            None if not client else f"{client[0]}:{client[1]}",
            scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET",
            asgi_target(raw_path) if raw_path else scope.get("path", ""),
            scope.get("query_string", b"").decode("latin-1"),
            scope.get("http_version", "1.1"),
        )

    async def receive(self) -> Message:
        message = await self._receive()
        if not self.complete and message["type"] in ("http.disconnect", "websocket.disconnect"):
            self.disconnected = True
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind in _STARTS:
            message = {**message, "headers": _with_header(message.get("headers", ()), self.pair)}
        try:
            await self._send(message)
        except OSError:
            self.disconnected = True
            raise
        # Counted once sent: what a send that failed carried never reached the client.
        self.emitted = True
        if kind == "http.response.body" or kind == "websocket.http.response.body":
            self.sent += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.complete = True
        elif kind == "http.response.start" or kind == "websocket.http.response.start":
            self.status = message["status"]
        elif kind == "websocket.accept":
            # A websocket that was accepted ends normally when the client leaves.
            self.status, self.complete = 101, True
        elif kind == "websocket.close":
            if self.status is None:
                self.status = 403  # closed before accept: servers answer the handshake with 403
            self.complete = True
        elif kind == "http.response.pathsend" or (
            kind == "http.response.zerocopysend" and not message.get("more_body", False)
        ):
            self.complete = True


class WSGIRequestID(RequestIDBase[WSGIApplication]):
    """WSGI middleware: the sibling of `RequestID`, with the same options.

    The id goes into ``environ["crossgate.request_id"]`` and the request header's ``HTTP_*``
    entry, and is `current_request_id` during every call into the app (the call, each step of
    its iterable, ``close()``). The access line is written on ``close()`` (PEP 3333 requires
    the call), or at once when the app raises. A ``wsgi.file_wrapper`` response is returned
    unwrapped, for the server's file fast path, and logged with its ``Content-Length``.

    Raises:
        ValueError: as for `RequestID`.
    """

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        key = self.environ_key
        # Behind WSGIProxyHeaders, trust is about the proxy that spoke, not the client it reported.
        peer = environ.get(PEER_KEY, environ.get("REMOTE_ADDR")) or None
        request_id = self.choose(peer, environ.get(key))
        # Changed in place, as WSGI middleware do: middleware further out (an error reporter)
        # find the id in the environ too.
        environ[key] = request_id
        environ[SCOPE_KEY] = request_id
        access = _WSGIAccess(self, environ, start_response)
        token = request_id_var.set(request_id)
        try:
            result = access.result = self.app(environ, access.start_response)
        except Exception:
            access.error = True
            access.finish()
            raise
        finally:
            request_id_var.reset(token)
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and isinstance(result, wrapper):
            access.complete = True
            access.sent = access.content_length
            access.finish()
            return result
        return access


class _WSGIAccess(AccessRecord):
    """`WSGIRequestID`'s ``start_response`` and the app's iterable, with the id set around each
    step and the access line written on ``close()``."""

    __slots__ = ("content_length", "environ", "iterator", "real", "result", "writer")

    def __init__(
        self, middleware: WSGIRequestID, environ: WSGIEnvironment, start_response: StartResponse
    ) -> None:
        super().__init__(middleware, environ[SCOPE_KEY])
        self.environ = environ
        self.real = start_response
        self.content_length = 0
        self.writer: Any = None
        self.result: Iterable[bytes] = ()
        self.iterator: Iterator[bytes] | None = None

    def request_line(self) -> tuple[str | None, str, str, str, str]:
        environ = self.environ
        address = environ.get("REMOTE_ADDR") or None
        port = environ.get("REMOTE_PORT")
        return (
            f"{address}:{port}" if address and port else address,
            str(environ.get("REQUEST_METHOD", "GET")),
            wsgi_target(environ.get("SCRIPT_NAME", ""), environ.get("PATH_INFO", "")),
            str(environ.get("QUERY_STRING", "")),
            str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")).removeprefix("HTTP/"),
        )

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Any:
        pair = (self.middleware.header, self.request_id)
        self.writer = self.real(status, _with_header(headers, pair), exc_info)
        code = status[:3]
        self.status = int(code) if code.isdigit() else None
        for name, value in headers:
            if name.lower() == "content-length" and value.strip().isdigit():
                self.content_length = int(value)
        return self.write

    def write(self, data: bytes) -> None:
        """The ``write`` callable (PEP 3333), counted."""
        self.writer(data)
        self.sent += len(data)
        self.emitted = self.emitted or bool(data)

    def __iter__(self) -> _WSGIAccess:
        return self

    def __next__(self) -> bytes:
        token = request_id_var.set(self.request_id)
        try:
            if self.iterator is None:
                self.iterator = iter(self.result)
            chunk = next(self.iterator)
        except StopIteration:
            self.complete = True
            raise
        except Exception:
            self.error = True
            raise
        finally:
            request_id_var.reset(token)
        self.sent += len(chunk)
        self.emitted = self.emitted or bool(chunk)
        return chunk

    def close(self) -> None:
        token = request_id_var.set(self.request_id)
        try:
            close_result(self.result)
        except Exception:
            self.error = True
            raise
        finally:
            # Closed before the end without an error: the server stopped, the client left.
            self.disconnected = not (self.complete or self.error)
            self.finish()
            request_id_var.reset(token)
