"""The websocket endpoint of the live ticket pages: ``/ws/tickets/<id>/``.

A plain ASGI app (no framework), routed to by `crossgate.routing.ProtocolRouter` for every
``websocket`` connection. Each connection follows one ticket: it is accepted once the hub has
subscribed it, gets a ``hello`` frame, then one text frame per event, the JSON of the demo's
live-update contract:

    {"type": "hello", "ticket": 7, "pid": 4242}
    {"type": "comment.created", "ticket": 7, "comment": {"id": ..., "author": ..., "body": ...,
     "created": "..."}}

The ``hello`` frame says the subscription is in place (a test, or a page, may rely on every
later comment arriving) and which server process holds the connection (the PID: with several
workers each has its own). Clients send nothing the server needs; what they send is read and
ignored, so that the disconnect is seen as soon as it happens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Final

from django.db import connections

from crossgate.concurrency import sync_to_async
from crossgate.types import ASGIReceive, ASGISend, Message
from demo_projects.django_helpdesk.live.hub import Hub, Subscription

__all__ = ["PATH", "LiveUpdates", "ticket_exists"]

_log = logging.getLogger("demo_projects.django_helpdesk.live")

PATH: Final = re.compile(r"/ws/tickets/(?P<ticket>[1-9][0-9]{0,17})/")
"""The paths served: a ticket id (at most 18 digits, so it fits SQLite's integer)."""

# RFC 6455 section 7.4.1: 1001 "going away" (the server shuts down); 1011 the server hit an
# unexpected condition (the hub's transport failed). 1013 "try again later" is from the IANA
# WebSocket close code registry: this connection fell too far behind.
_CLOSE_CODES: Final = {"shutdown": 1001, "error": 1011, "overflow": 1013}


def _ticket_exists_sync(ticket_id: int) -> bool:
    # Imported here: the endpoint itself needs no configured Django until it looks a ticket up.
    from demo_projects.django_helpdesk.tickets.models import Ticket

    try:
        return Ticket._default_manager.filter(pk=ticket_id).exists()
    finally:
        # This runs in a thread of crossgate's pool, not in a request Django set up: close the
        # connection it opened, as Django's request_finished handler would.
        connections.close_all()


async def ticket_exists(ticket_id: int) -> bool:
    """Whether the ticket exists: the sync ORM, in a worker thread."""
    return await sync_to_async(_ticket_exists_sync, thread_sensitive=False)(ticket_id)


class LiveUpdates:
    """ASGI app: websockets that follow a ticket through a `Hub`.

    Args:
        hub: where comments are published and subscribed to.
        exists: ``await exists(ticket_id)`` says whether a ticket exists; a connection to an
            unknown ticket is refused with a 404 like an unknown path.

    Raises:
        ValueError: (when called) a scope that is not ``websocket`` (ASGI spec: an app raises for
            a scope type it does not serve; crossgate's router then treats it as having no
            lifespan).
    """

    def __init__(
        self, hub: Hub, *, exists: Callable[[int], Awaitable[bool]] = ticket_exists
    ) -> None:
        self.hub = hub
        self.exists = exists

    def __repr__(self) -> str:
        return f"LiveUpdates({self.hub!r})"

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "websocket":
            raise ValueError(f"LiveUpdates serves websocket connections, not {scope['type']!r}")
        message = await receive()
        if message["type"] != "websocket.connect":
            return  # the client left before the handshake
        found = PATH.fullmatch(scope["path"])
        if found is None:
            await self._refuse(scope, send, 404, f"no live updates at {scope['path']!r}")
            return
        ticket_id = int(found["ticket"])
        if not await self.exists(ticket_id):
            await self._refuse(scope, send, 404, f"there is no ticket {ticket_id}")
            return
        async with AsyncExitStack() as stack:
            try:
                subscription = await stack.enter_async_context(self.hub.subscribe(ticket_id))
            except Exception:
                _log.exception("could not follow ticket %s through %r", ticket_id, self.hub)
                await self._refuse(scope, send, 503, "live updates are unavailable right now")
                return
            await send({"type": "websocket.accept"})
            hello = {"type": "hello", "ticket": ticket_id, "pid": os.getpid()}
            await send({"type": "websocket.send", "text": json.dumps(hello)})
            await self._serve(subscription, receive, send)

    async def _serve(
        self, subscription: Subscription, receive: ASGIReceive, send: ASGISend
    ) -> None:
        pump = asyncio.create_task(self._pump(subscription, send))
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
        finally:
            # The client left (or this task was cancelled): stop sending, and wait for the
            # pump so no task outlives the connection.
            pump.cancel()
            await asyncio.wait((pump,))
            error = None if pump.cancelled() else pump.exception()
            if isinstance(error, OSError):
                # ASGI spec (websocket "Send"): `send` on a closed connection raises an
                # OSError; the client left while a frame was on its way. Nothing to report.
                _log.debug("a websocket on ticket %s left mid-send", subscription.ticket_id)
            elif error is not None:
                _log.error(
                    "sending live updates for ticket %s failed",
                    subscription.ticket_id,
                    exc_info=error,
                )

    async def _pump(self, subscription: Subscription, send: ASGISend) -> None:
        async for text in subscription:
            await send({"type": "websocket.send", "text": text})
        # The hub ended the subscription: tell the page why (it shows "offline").
        reason = subscription.reason or "shutdown"
        await send({"type": "websocket.close", "code": _CLOSE_CODES[reason], "reason": reason})

    @staticmethod
    async def _refuse(scope: Message, send: ASGISend, status: int, reason: str) -> None:
        _log.info("refused a websocket: %s", reason)
        if "websocket.http.response" in (scope.get("extensions") or {}):
            # ASGI websocket spec, "Denial Response" extension: a real 404 instead of the 403
            # a close before accept produces.
            body = reason.encode()
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            # Closing before accepting refuses the handshake (the server answers 403). 4000 +
            # the status: an application close code (RFC 6455 section 7.4.2) for servers that
            # report it.
            await send({"type": "websocket.close", "code": 4000 + status, "reason": reason})
