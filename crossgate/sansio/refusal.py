"""The messages that refuse a connection with a status and a reason, for both scope types. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from crossgate.sansio.response import error_events
from crossgate.types import Message, as_message

__all__ = ["MAX_CLOSE_REASON", "WEBSOCKET_DENIAL", "close_reason", "refusal_events"]

WEBSOCKET_DENIAL: Final = "websocket.http.response"
"""The ASGI extension that answers a websocket handshake with an HTTP response."""

MAX_CLOSE_REASON: Final = 123
"""Bytes a websocket close reason may take: 125 in a control frame, less the code (RFC 6455 5.5)."""


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
    """The messages that answer ``scope`` with ``status`` and a plain-text ``reason``: an error
    response, or a websocket close before accept when the server has no `WEBSOCKET_DENIAL`."""
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
