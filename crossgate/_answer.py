"""Answering for an app: an HTTP error response, or a refused websocket handshake.

The messages are `crossgate.sansio.refusal`'s; this module only sends them, at the right time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from crossgate.sansio.refusal import refusal_events
from crossgate.types import ASGIReceive, ASGISend

__all__ = ["refuse", "respond"]


async def refuse(
    scope: Mapping[str, Any],
    receive: ASGIReceive,
    send: ASGISend,
    status: int,
    reason: str,
    *,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Answer ``scope`` with ``status`` and ``reason`` (`crossgate.sansio.refusal`).

    A websocket refusal answers the client's ``websocket.connect``, so it is received first:
    the ASGI spec has the server send that message during the handshake and wait for the
    app's reply ("Connect - receive event"), and the denial-response extension allows its
    messages "after the websocket.connect message". A client that left before the handshake
    (``websocket.disconnect`` instead) gets nothing.
    """
    if scope["type"] == "websocket":
        message = await receive()
        if message["type"] != "websocket.connect":
            return
    for message in refusal_events(scope, status, reason, headers=headers):
        await send(message)


async def respond(
    send: ASGISend, status: int, reason: str, *, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Answer an ``http`` scope with a short plain-text response: ``status`` and ``reason``
    (`crossgate.sansio.response.error_events`)."""
    for message in refusal_events(_HTTP, status, reason, headers=headers):
        await send(message)


_HTTP: Final = {"type": "http"}
