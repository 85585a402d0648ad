"""`RequestID`, the ASGI side of `crossgate.middleware.request_id`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from crossgate.middleware._common import first_header
from crossgate.middleware.proxy_headers import PEER_KEY
from crossgate.middleware.request_id._options import (
    SCOPE_KEY,
    RequestIDBase,
    request_id_var,
    status_without_response,
)
from crossgate.sansio.request_id import asgi_target
from crossgate.types import ASGIApp, ASGIReceive, ASGISend, Message

__all__ = ["RequestID"]

# The messages that carry response headers, where the id goes (ASGI spec: HTTP "Response Start",
# WebSocket "Accept" and the "WebSocket Denial Response" extension).
_STARTS = frozenset({"http.response.start", "websocket.http.response.start", "websocket.accept"})


class RequestID(RequestIDBase[ASGIApp]):
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
        incoming = None if options.trusted is None else first_header(headers, name)
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
                status = status_without_response(outcome == "app error", gone)
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
