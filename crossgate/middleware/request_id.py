"""`RequestID` / `WSGIRequestID`: one id per request, on the response and in the logs, and one
access line per request through `logging`, the same on both sides."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, AnyStr, Generic
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from crossgate.middleware._common import App, close_result, first_header
from crossgate.middleware.proxy_headers import PEER_KEY
from crossgate.sansio.headers import header_environ_key
from crossgate.sansio.proxy_headers import TrustedPeers
from crossgate.sansio.request_id import (
    DEFAULT_MAX_ID_LENGTH,
    accept_request_id,
    access_line,
    asgi_request_line,
    log_safe,
    new_request_id,
    wsgi_request_line,
)
from crossgate.sansio.response import OptExcInfo
from crossgate.types import ASGIApp, ASGIReceive, ASGISend, Message

__all__ = ["RequestID", "RequestIDFilter", "WSGIRequestID", "current_request_id", "request_id_var"]

#: The id of the request whose code is running (``None`` outside one).
request_id_var: ContextVar[str | None] = ContextVar("crossgate.request_id", default=None)

_SCOPE_KEY = "crossgate.request_id"
_DISCONNECTS = ("http.disconnect", "websocket.disconnect")


def current_request_id() -> str | None:
    """The id of the request being handled in this context, or ``None``."""
    return request_id_var.get()


class RequestIDFilter(logging.Filter):
    """A `logging.Filter` that sets ``record.request_id`` (unless set already) to the current
    request's id, or ``default`` outside a request. It never drops a record."""

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


class _RequestIDBase(Generic[App]):
    def __init__(
        self,
        app: App,
        *,
        header: str = "X-Request-ID",
        trust_incoming: bool | Iterable[str] = False,
        access_log: bool = True,
        logger: str | logging.Logger = "crossgate.access",
        max_id_length: int = DEFAULT_MAX_ID_LENGTH,
    ) -> None:
        # None for a name that is not an RFC 9110 token ("?" stands in for non-ASCII).
        environ_key = header_environ_key(header.lower().encode("ascii", "replace"))
        if environ_key is None:
            raise ValueError(f"header must be a valid header name, not {header!r}")
        if max_id_length < 1:
            raise ValueError(f"max_id_length must be 1 or more, not {max_id_length}")
        if trust_incoming is True:
            warnings.warn(
                "RequestID(trust_incoming=True) trusts every client's request id; pass the "
                "proxies to trust instead, such as trust_incoming=['127.0.0.1', '::1'] (or "
                "['*'] to keep trusting everybody)",
                DeprecationWarning,
                stacklevel=2,
            )
            trust_incoming = ["*"]
        self.trusted = None if trust_incoming is False else TrustedPeers(trust_incoming)
        self.app = app
        self.header = header
        self.name = header.lower().encode("ascii")
        self.environ_key = environ_key
        self.access_log = access_log
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.max_id_length = max_id_length

    def choose(self, peer: str | None, incoming: bytes | str | None) -> str:
        if self.trusted is not None and incoming is not None and self.trusted.trusts(peer):
            return accept_request_id(incoming, max_length=self.max_id_length) or new_request_id()
        return new_request_id()


class _AccessLine(dict[str, Any]):
    """An access line's fields, made into the message only when a handler formats it."""

    def __str__(self) -> str:
        return access_line(**self)


class _Access:
    """What one side learns about a response, and its access line (`finish`)."""

    status: int | None = None
    sent = 0
    emitted = False  # something went out, so the server cannot answer 500 any more
    complete = False
    disconnected = False
    error = False
    cancelled = False
    logged = False

    def __init__(
        self,
        middleware: _RequestIDBase[Any],
        request_id: str,
        request_line: Callable[[], dict[str, Any]],
    ) -> None:
        self.middleware = middleware
        self.request_id = request_id
        self.request_line = request_line
        self.started = time.perf_counter()

    def finish(self) -> None:
        """Write the access line at INFO (once), with its fields also as record attributes."""
        if self.logged:
            return
        self.logged = True
        logger = self.middleware.logger
        if not (self.middleware.access_log and logger.isEnabledFor(logging.INFO)):
            return
        if self.complete and not (self.error or self.cancelled):
            outcome = ""
        elif self.disconnected:
            outcome = "client disconnected"
        elif self.error:
            outcome = "app error"
        elif self.cancelled:
            outcome = "cancelled"
        else:
            outcome = "incomplete"
        status = self.status
        if status is None or (self.error and not self.emitted):
            # Nobody got an answer: nginx's "client closed request", or the server's 500.
            status = 499 if outcome in ("client disconnected", "cancelled") else 500
        line = _AccessLine(
            self.request_line(),
            status=status,
            sent=self.sent,
            duration_ms=(time.perf_counter() - self.started) * 1000,
            request_id=self.request_id,
            outcome=outcome,
        )
        # Logger.info() would walk the stack and check each extra key, doubling the cost.
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, line, (), None)
        client = line["client"]
        # Escaped: a decoded path (no raw_path) holding CR LF must not make two log lines.
        record.__dict__.update(
            request_id=self.request_id,
            client_addr=client if client is None else log_safe(client),
            http_method=log_safe(line["method"]),
            http_path=log_safe(line["path"]),
            http_status=status,
            response_bytes=self.sent,
            duration_ms=line["duration_ms"],
            outcome=outcome or "complete",
        )
        logger.handle(record)


class RequestID(_RequestIDBase[ASGIApp]):
    """ASGI middleware: a request id per ``http`` and ``websocket`` request, and access lines;
    the options, where the id goes and the access line are in
    [Middleware: RequestID](middleware.md#requestid).

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
        # Behind ProxyHeaders, the proxy that spoke, not the client it reported.
        peer = scope[PEER_KEY] if PEER_KEY in scope else (client[0] if client else None)
        request_id = self.choose(
            peer, None if self.trusted is None else first_header(headers, name)
        )
        pair = (name, request_id.encode("ascii"))
        headers = [h for h in headers if h[0] != name]
        headers.append(pair)
        scope = {**scope, "headers": headers, _SCOPE_KEY: request_id}
        access = _Access(self, request_id, lambda: asgi_request_line(scope))

        async def watch_receive() -> Message:
            message = await receive()
            if not access.complete and message["type"] in _DISCONNECTS:
                access.disconnected = True
            return message

        async def watch_send(message: Message) -> None:
            kind = message["type"]
            if kind in {"http.response.start", "websocket.http.response.start", "websocket.accept"}:
                message = {**message, "headers": _with_header(message.get("headers", ()), pair)}
            try:
                await send(message)
            except OSError:
                access.disconnected = True
                raise
            # Counted once sent: what a send that failed carried never reached the client.
            access.emitted = True
            if kind == "http.response.body" or kind == "websocket.http.response.body":
                access.sent += len(message.get("body", b""))
                if not message.get("more_body", False):
                    access.complete = True
            elif kind == "http.response.start" or kind == "websocket.http.response.start":
                access.status = message["status"]
            elif kind == "websocket.accept":
                access.status, access.complete = 101, True
            elif kind == "websocket.close":
                # Closed before accept: servers answer the handshake with 403.
                access.status, access.complete = access.status or 403, True
            elif kind == "http.response.pathsend" or (
                kind == "http.response.zerocopysend" and not message.get("more_body", False)
            ):
                access.complete = True

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, watch_receive, watch_send)
        except asyncio.CancelledError:
            access.cancelled = True
            raise
        except Exception:
            access.error = True
            raise
        finally:
            access.finish()
            request_id_var.reset(token)


class WSGIRequestID(_RequestIDBase[WSGIApplication]):
    """WSGI middleware: the sibling of `RequestID`, with the same options.

    Raises:
        ValueError: as for `RequestID`.
    """

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        key = self.environ_key
        peer = environ.get(PEER_KEY, environ.get("REMOTE_ADDR")) or None
        request_id = self.choose(peer, environ.get(key))
        # In place, as WSGI middleware do: middleware further out find the id too.
        environ[key] = request_id
        environ[_SCOPE_KEY] = request_id
        access = _WSGIAccess(self, request_id, lambda: wsgi_request_line(environ), start_response)
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


class _WSGIAccess(_Access):
    """`WSGIRequestID`'s ``start_response`` and the app's iterable, with the id set."""

    content_length = 0
    writer: Any = None
    result: Iterable[bytes] = ()
    iterator: Iterator[bytes] | None = None

    def __init__(
        self,
        middleware: WSGIRequestID,
        request_id: str,
        request_line: Callable[[], dict[str, Any]],
        start_response: StartResponse,
    ) -> None:
        super().__init__(middleware, request_id, request_line)
        self.real = start_response

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
