"""Sending `crossgate.sansio.refusal`'s answers for an app, at the right time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from crossgate.sansio.refusal import refusal_events
from crossgate.types import ASGIReceive, ASGISend

__all__ = ["refuse", "respond"]

_HTTP: Final = {"type": "http"}


async def refuse(
    scope: Mapping[str, Any],
    receive: ASGIReceive,
    send: ASGISend,
    status: int,
    reason: str,
    *,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Answer ``scope`` with ``status`` and ``reason``. A websocket refusal comes "after the
    websocket.connect message" (ASGI spec): a client that left before it gets nothing."""
    if scope["type"] == "websocket":
        message = await receive()
        if message["type"] != "websocket.connect":
            return
    for message in refusal_events(scope, status, reason, headers=headers):
        await send(message)


async def respond(
    send: ASGISend, status: int, reason: str, *, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Answer an ``http`` scope with ``status`` and ``reason``."""
    for message in refusal_events(_HTTP, status, reason, headers=headers):
        await send(message)
