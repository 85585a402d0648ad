"""The messages that refuse a connection with a status and a reason, for both scope types. Pure.

Every refusal (a router, `WSGIToASGI`, a middleware) sends them through `crossgate._answer`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from crossgate.sansio.response import error_events
from crossgate.types import Message, as_message

__all__ = ["MAX_CLOSE_REASON", "WEBSOCKET_DENIAL", "close_reason", "refusal_events"]

WEBSOCKET_DENIAL: Final = "websocket.http.response"
"""The ASGI extension that lets an app answer a websocket handshake with an HTTP response (ASGI
spec, "Extensions": Websocket Denial Response)."""

MAX_CLOSE_REASON: Final = 123
"""Bytes of UTF-8 a websocket close reason may take: a control frame carries at most 125 bytes
(RFC 6455 section 5.5), two of them the close code (section 5.5.1)."""


def close_reason(reason: str) -> str:
    """``reason`` cut to `MAX_CLOSE_REASON` bytes of UTF-8, on a character boundary."""
    # "ignore" drops only the character the cut split.
    return reason.encode("utf-8", "replace")[:MAX_CLOSE_REASON].decode("utf-8", "ignore")


def refusal_events(
    scope: Mapping[str, Any],
    status: int,
    reason: str,
    *,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> list[Message]:
    """The messages that answer ``scope`` with ``status`` and a plain-text ``reason``.

    ``http``, or a websocket whose server offers `WEBSOCKET_DENIAL`: the response of
    `crossgate.sansio.response.error_events`. Any other websocket: a close before accept, code
    1011 for a 5xx status, else 1008 (RFC 6455 section 7.4.1).
    """
    start, body = error_events(status, reason, extra_headers=headers)
    if scope["type"] != "websocket":
        return [as_message(start), as_message(body)]
    if WEBSOCKET_DENIAL in (scope.get("extensions") or {}):
        return [
            {**start, "type": "websocket.http.response.start"},
            {**body, "type": "websocket.http.response.body"},
        ]
    code = 1011 if status >= 500 else 1008
    return [{"type": "websocket.close", "code": code, "reason": close_reason(reason)}]
