"""`RequestID` / `WSGIRequestID`: one id per request, on the response, in the logs, and one
access line per request through `logging`.

The id is reused from the request's ``X-Request-ID`` only when the direct peer is trusted to set
it (``trust_incoming``) and the value is safe (`crossgate.sansio.request_id.accept_request_id`);
otherwise a fresh one is made. The app finds it in ``scope["crossgate.request_id"]`` (ASGI) or
``environ["crossgate.request_id"]`` (WSGI), in the request header itself (replaced, so a spoofed
value never reaches the app), and in `current_request_id` while its code runs; `RequestIDFilter`
puts it on every log record as ``record.request_id``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import warnings
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from crossgate.middleware.proxy_headers import PEER_KEY
from crossgate.sansio.headers import header_environ_key
from crossgate.sansio.proxy_headers import TrustedPeers
from crossgate.sansio.request_id import (
    DEFAULT_MAX_ID_LENGTH,
    accept_request_id,
    access_line,
    asgi_target,
    log_safe,
    new_request_id,
    wsgi_target,
)
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

__all__ = [
    "RequestID",
    "RequestIDFilter",
    "WSGIRequestID",
    "current_request_id",
    "request_id_var",
]

#: The id of the request whose code is running (``None`` outside one). Set by `RequestID` for
#: the app's task (tasks it starts inherit it) and by `WSGIRequestID` around each call into the
#: app, its iterable and its ``close()``.
request_id_var: ContextVar[str | None] = ContextVar("crossgate.request_id", default=None)

SCOPE_KEY = "crossgate.request_id"

# RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def current_request_id() -> str | None:
    """The id of the request being handled in this context, or ``None``."""
    return request_id_var.get()


class RequestIDFilter(logging.Filter):
    """A `logging.Filter` that sets ``record.request_id`` on every record it sees.

    The value is the current request's id, or ``default`` outside a request; a record that
    already carries one (the access line) keeps it. Attach it to a handler, and use
    ``%(request_id)s`` in its format::

        handler.addFilter(RequestIDFilter())
        handler.setFormatter(logging.Formatter("%(request_id)s %(levelname)s %(message)s"))

    It never drops a record.
    """

    def __init__(self, name: str = "", *, default: str = "-") -> None:
        super().__init__(name)
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get() or self.default
        return True


class _Options:
    """The options `RequestID` and `WSGIRequestID` share, checked once."""

    __slots__ = (
        "access_log",
        "environ_key",
        "header",
        "logger",
        "max_id_length",
        "name",
        "trusted",
    )

    def __init__(
        self,
        *,
        header: str,
        trust_incoming: bool | Iterable[str],
        access_log: bool,
        logger: str | logging.Logger,
        max_id_length: int,
    ) -> None:
        if not _TOKEN.fullmatch(header):
            raise ValueError(f"header must be a valid header name, not {header!r}")
        if max_id_length < 1:
            raise ValueError(f"max_id_length must be 1 or more, not {max_id_length}")
        self.header = header
        self.name = header.lower().encode("ascii")
        key = header_environ_key(self.name)
        if key is None:  # pragma: no cover - a token always has a key (checked just above)
            raise ValueError(f"header must be a valid header name, not {header!r}")
        self.environ_key = key
        self.trusted: TrustedPeers | None
        if trust_incoming is True:
            # Deprecated: "everybody" reads as "my proxy", but any client that reaches the app
            # port directly then chooses its own id. A peer list says whom; ["*"] keeps the
            # old meaning, explicitly.
            warnings.warn(
                "RequestID(trust_incoming=True) trusts every client's request id; pass the "
                "proxies to trust instead, such as trust_incoming=['127.0.0.1', '::1'] (or "
                "['*'] to keep trusting everybody)",
                DeprecationWarning,
                stacklevel=3,
            )
            self.trusted = TrustedPeers(["*"])
        elif trust_incoming is False:
            self.trusted = None
        else:
            self.trusted = TrustedPeers(trust_incoming)
        self.access_log = access_log
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.max_id_length = max_id_length

    def choose(self, peer: str | None, incoming: bytes | str | None) -> str:
        """Reuse ``incoming`` when ``peer`` is trusted and the value is safe, else a new id."""
        if self.trusted is not None and incoming is not None and self.trusted.trusts(peer):
            reused = accept_request_id(incoming, max_length=self.max_id_length)
            if reused is not None:
                return reused
        return new_request_id()

    def enabled(self) -> bool:
        """Whether an access line would be written (``access_log`` on, INFO enabled)."""
        return self.access_log and self.logger.isEnabledFor(logging.INFO)

    def log(
        self,
        *,
        request_id: str,
        client: str | None,
        method: str,
        path: str,
        query: str,
        http_version: str,
        status: int,
        sent: int,
        started: float,
        outcome: str,
    ) -> None:
        """Write the access line at INFO, with its fields also as record attributes.

        Callers check `enabled` first, so nothing is computed for a line nobody takes.
        """
        logger = self.logger
        duration_ms = (time.perf_counter() - started) * 1000
        line = _AccessLine(
            {
                "client": client,
                "method": method,
                "path": path,
                "query": query,
                "http_version": http_version,
                "status": status,
                "sent": sent,
                "duration_ms": duration_ms,
                "request_id": request_id,
                "outcome": outcome,
            }
        )
        # The record is made directly, without Logger.info(): that would walk the stack to find
        # the caller (meaningless for an access line) and check each extra key, doubling the
        # cost. No arguments: the line is logged as is, never %-formatted (paths hold "%").
        # The message is built lazily, as logging does with %-arguments: only when a handler
        # formats the record (a JSON formatter may use the attributes alone).
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, line, (), None)
        # The attributes are escaped as the message is: a formatter using %(http_path)s must
        # not write a path holding CR/LF (a server that sends no raw_path gives the decoded
        # path) as a forged second line.
        record.__dict__.update(
            request_id=request_id,
            client_addr=client if client is None else log_safe(client),
            http_method=log_safe(method),
            http_path=log_safe(path),
            http_status=status,
            response_bytes=sent,
            duration_ms=duration_ms,
            outcome=outcome or "complete",
        )
        logger.handle(record)


class _AccessLine:
    """An access line's message, built by `access_line` only when a handler formats it."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = fields

    def __str__(self) -> str:
        return access_line(**self._fields)


def _status_without_response(error: bool, disconnected: bool) -> int:
    """The status to log when the app sent none: what the server answers, or 499."""
    if disconnected and not error:
        return 499  # nginx's "client closed request": nobody got an answer
    return 500  # the server answers 500 for an app that raised or returned without one


class RequestID:
    """ASGI middleware: a request id per ``http`` and ``websocket`` request, and access lines.

    Args:
        app: the ASGI application.
        header: the request and response header carrying the id.
        trust_incoming: whose incoming id to reuse: ``False`` (nobody: always a fresh id), or
            peers (IP addresses, networks such as ``"10.0.0.0/8"``, ``"unix"``, ``"*"`` for
            every client; a string is split on commas), such as ``["127.0.0.1", "::1"]`` for
            nginx on the same machine. ``True`` still means every client but is deprecated
            (a `DeprecationWarning`): a client that reaches the app port directly would choose
            its own id. Peers are matched against the direct peer: the
            ``client`` this middleware sees or, behind `ProxyHeaders`, the proxy it believed
            (`ProxyHeaders` keeps that address for us under ``"crossgate.proxy_peer"``).
        access_log: write one line per request at INFO.
        logger: the logger (or its name) for the access lines.
        max_id_length: incoming ids longer than this are replaced.

    The id goes into ``scope["crossgate.request_id"]``, replaces the request header in
    ``scope["headers"]``, goes on ``http.response.start`` (replacing a value the app set),
    ``websocket.accept`` and a websocket denial response, and is `current_request_id` while the
    app runs. The access line is written when the app returns or raises: status, body bytes,
    duration, and the outcome when the response did not complete (``app error``: status 500
    when nothing was sent; ``client disconnected``: 499 when nothing was sent; ``cancelled``;
    ``incomplete``). Other scope types pass through untouched.

    Raises:
        ValueError: ``header`` is not a valid header name, a peer is not an address or network,
            or ``max_id_length`` is under 1.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header: str = "X-Request-ID",
        trust_incoming: bool | Iterable[str] = False,
        access_log: bool = True,
        logger: str | logging.Logger = "crossgate.access",
        max_id_length: int = DEFAULT_MAX_ID_LENGTH,
    ) -> None:
        self.app = app
        self.options = _Options(
            header=header,
            trust_incoming=trust_incoming,
            access_log=access_log,
            logger=logger,
            max_id_length=max_id_length,
        )

    async def __call__(self, scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        options = self.options
        name = options.name
        client = scope.get("client")
        headers = scope["headers"]
        incoming = None
        if options.trusted is not None:
            for key, value in headers:
                if key == name:
                    incoming = value
                    break
        # Behind ProxyHeaders, trust is about the proxy that spoke, not the client it reported.
        peer = scope[PEER_KEY] if PEER_KEY in scope else (client[0] if client else None)
        request_id = options.choose(peer, incoming)
        pair = (name, request_id.encode("ascii"))
        headers = [h for h in headers if h[0] != name]
        headers.append(pair)
        scope = {**scope, "headers": headers, SCOPE_KEY: request_id}
        watch = _Watch(pair, receive, send)
        token = request_id_var.set(request_id)
        outcome = ""
        try:
            await self.app(scope, watch.receive, watch.send)
        except asyncio.CancelledError:
            outcome = "client disconnected" if watch.disconnected else "cancelled"
            raise
        except Exception:
            outcome = "client disconnected" if watch.disconnected else "app error"
            raise
        finally:
            if not outcome and not watch.complete:
                outcome = "client disconnected" if watch.disconnected else "incomplete"
            status = watch.status
            if status is None:
                # A server cancels the app's task when the client leaves (hypercorn does).
                gone = watch.disconnected or outcome == "cancelled"
                status = _status_without_response(outcome == "app error", gone)
            if options.enabled():
                raw_path = scope.get("raw_path")
                options.log(
                    request_id=request_id,
                    client=None if not client else f"{client[0]}:{client[1]}",
                    method=scope.get("method", "GET") if kind == "http" else "WEBSOCKET",
                    path=asgi_target(raw_path) if raw_path else scope.get("path", ""),
                    query=scope.get("query_string", b"").decode("latin-1"),
                    http_version=scope.get("http_version", "1.1"),
                    status=status,
                    sent=watch.sent,
                    started=started,
                    outcome=outcome,
                )
            request_id_var.reset(token)


def _with_header(
    headers: Iterable[tuple[bytes, bytes]], pair: tuple[bytes, bytes]
) -> list[tuple[bytes, bytes]]:
    name = pair[0]
    kept = [h for h in headers if h[0].lower() != name]
    kept.append(pair)
    return kept


class _Watch:
    """`RequestID`'s ``receive`` and ``send`` for one request: the id goes on, the counts in."""

    __slots__ = ("_pair", "_receive", "_send", "complete", "disconnected", "sent", "status")

    def __init__(self, pair: tuple[bytes, bytes], receive: ASGIReceive, send: ASGISend) -> None:
        self._pair = pair
        self._receive = receive
        self._send = send
        self.status: int | None = None
        self.sent = 0
        self.complete = False
        self.disconnected = False

    async def receive(self) -> Message:
        message = await self._receive()
        if not self.complete and message["type"] in ("http.disconnect", "websocket.disconnect"):
            self.disconnected = True
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind in _STARTS:
            message = {**message, "headers": _with_header(message.get("headers", ()), self._pair)}
        try:
            await self._send(message)
        except OSError:
            self.disconnected = True
            raise
        # Counted once sent: what a send that failed carried never reached the client.
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


# The messages that carry response headers, where the id goes (ASGI spec: HTTP "Response Start",
# WebSocket "Accept" and the "WebSocket Denial Response" extension).
_STARTS = frozenset({"http.response.start", "websocket.http.response.start", "websocket.accept"})


class WSGIRequestID:
    """WSGI middleware: the sibling of `RequestID`, with the same options.

    The id goes into ``environ["crossgate.request_id"]``, replaces the request header's
    ``HTTP_*`` entry, goes on the response (replacing a value the app set), and is
    `current_request_id` during every call into the app: the call itself, each step of its
    iterable, and ``close()``. The access line is written when the server calls ``close()``
    (PEP 3333 requires it, even after an error or an early disconnect), or at once when the app
    raises. A response that is a ``wsgi.file_wrapper`` is returned unwrapped, so the server's
    file fast path still works; its line is written when the app returns, with the
    ``Content-Length`` as its byte count.

    Raises:
        ValueError: as for `RequestID`.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        header: str = "X-Request-ID",
        trust_incoming: bool | Iterable[str] = False,
        access_log: bool = True,
        logger: str | logging.Logger = "crossgate.access",
        max_id_length: int = DEFAULT_MAX_ID_LENGTH,
    ) -> None:
        self.app = app
        self.options = _Options(
            header=header,
            trust_incoming=trust_incoming,
            access_log=access_log,
            logger=logger,
            max_id_length=max_id_length,
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        options = self.options
        key = options.environ_key
        # Behind WSGIProxyHeaders, trust is about the proxy that spoke, not the client it reported.
        peer = environ.get(PEER_KEY, environ.get("REMOTE_ADDR")) or None
        request_id = options.choose(peer, environ.get(key))
        # Changed in place, as WSGI middleware do: middleware further out (an error reporter)
        # find the id in the environ too.
        environ[key] = request_id
        environ[SCOPE_KEY] = request_id
        access = _Access(options, environ, request_id, started, start_response)
        token = request_id_var.set(request_id)
        try:
            result = self.app(environ, access.start_response)
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
        return _LoggedIterable(access, result)


class _Access:
    """What `WSGIRequestID` learns about one response, and its access line."""

    __slots__ = (
        "complete",
        "content_length",
        "emitted",
        "environ",
        "error",
        "logged",
        "options",
        "real",
        "request_id",
        "sent",
        "started",
        "status",
        "writer",
    )

    def __init__(
        self,
        options: _Options,
        environ: WSGIEnvironment,
        request_id: str,
        started: float,
        start_response: StartResponse,
    ) -> None:
        self.options = options
        self.environ = environ
        self.request_id = request_id
        self.started = started
        self.real = start_response
        self.status: int | None = None
        self.content_length = 0
        self.sent = 0
        self.emitted = False
        self.complete = False
        self.error = False
        self.logged = False
        self.writer: Any = None

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Any:
        options = self.options
        lower = options.header.lower()
        kept = [h for h in headers if h[0].lower() != lower]
        kept.append((options.header, self.request_id))
        self.writer = self.real(status, kept, exc_info)
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

    def finish(self) -> None:
        """Write the access line, once."""
        if self.logged:
            return
        self.logged = True
        if not self.options.enabled():
            return
        environ = self.environ
        outcome = "app error" if self.error else "" if self.complete else "client disconnected"
        status = self.status
        if status is None or (self.error and not self.emitted):
            # Nothing went out: the server answers an error with a 500 of its own.
            status = _status_without_response(self.error, outcome == "client disconnected")
        address = environ.get("REMOTE_ADDR") or None
        port = environ.get("REMOTE_PORT")
        protocol = str(environ.get("SERVER_PROTOCOL", "HTTP/1.1"))
        self.options.log(
            request_id=self.request_id,
            client=f"{address}:{port}" if address and port else address,
            method=str(environ.get("REQUEST_METHOD", "GET")),
            path=wsgi_target(environ.get("SCRIPT_NAME", ""), environ.get("PATH_INFO", "")),
            query=str(environ.get("QUERY_STRING", "")),
            http_version=protocol.removeprefix("HTTP/"),
            status=status,
            sent=self.sent,
            started=self.started,
            outcome=outcome,
        )


class _LoggedIterable:
    """The app's iterable, with the request id set around each step and the line on close."""

    __slots__ = ("_access", "_iterator", "_result")

    def __init__(self, access: _Access, result: Iterable[bytes]) -> None:
        self._access = access
        self._result = result
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> _LoggedIterable:
        return self

    def __next__(self) -> bytes:
        access = self._access
        token = request_id_var.set(access.request_id)
        try:
            if self._iterator is None:
                self._iterator = iter(self._result)
            chunk = next(self._iterator)
        except StopIteration:
            access.complete = True
            raise
        except Exception:
            access.error = True
            raise
        finally:
            request_id_var.reset(token)
        access.sent += len(chunk)
        if chunk:
            access.emitted = True
        return chunk

    def close(self) -> None:
        access = self._access
        token = request_id_var.set(access.request_id)
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        except Exception:
            access.error = True
            raise
        finally:
            access.finish()
            request_id_var.reset(token)
