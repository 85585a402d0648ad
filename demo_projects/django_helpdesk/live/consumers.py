"""The websocket of the live ticket pages: a Channels consumer on ``/ws/tickets/<id>/``.

Only a logged-in user follows a ticket: ``AuthMiddlewareStack`` (in front, see ``app.py``) puts
the user of the session cookie in ``scope["user"]``, the cookie the untouched legacy login view
set. The consumer joins the ticket's group of the channel layer; every ``comment.created`` sent
to that group (by the ``post_save`` receiver, whoever saved the comment) goes out as one JSON
text frame, the demo's live-update contract:

    {"type": "hello", "ticket": 7, "user": "demo", "pid": 4242}
    {"type": "comment.created", "ticket": 7, "comment": {"id": ..., "author": ..., "body": ...,
     "created": "..."}}

``hello`` says the socket is in the group (every later comment reaches it) and which server
process holds it. A client may send ``{"type": "comment", "body": "..."}``: the comment is
saved with the session's user as its author and reaches every page like any other. Before it
handles any message (a comment of the group, or a frame of the client) the consumer checks that
the session still belongs to the user: after a logout in another tab the socket closes at the
next message.
"""

from __future__ import annotations

import json
import os
from importlib import import_module
from typing import Any, Final

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import SESSION_KEY

__all__ = ["CLOSE_LOGGED_OUT", "TicketConsumer", "group_name"]

# RFC 6455 section 7.4.1: 1008, "policy violation": the endpoint refuses this connection (used
# for a handshake refused without the denial-response extension, and after a logout).
CLOSE_LOGGED_OUT: Final = 1008
MAX_BODY: Final = 10_000


def group_name(ticket_id: int) -> str:
    """The channel layer group of a ticket (Channels: ASCII letters, digits, ``-_.``)."""
    return f"ticket-{ticket_id}"


class TicketConsumer(AsyncJsonWebsocketConsumer):
    """Follow one ticket for the logged-in user of the session.

    Refused: an anonymous user (403), an unknown ticket (404). The refusal is an HTTP denial
    response with the reason when the server offers the ASGI ``websocket.http.response``
    extension, a close before accept (which the server sends as a 403) otherwise.
    """

    ticket_id: int = 0
    username: str = ""
    user_pk: str = ""

    async def connect(self) -> None:
        # Imported here: the module is imported by app.py before Django is set up.
        from demo_projects.django_helpdesk.tickets.models import Ticket

        user = self.scope["user"]
        if user is None or not user.is_authenticated:
            await self.refuse(403, "log in to follow a ticket live")
            return
        self.ticket_id = int(self.scope["url_route"]["kwargs"]["ticket_id"])
        # (An id past the database's integer range finds nothing: Django 5 answers such a
        # lookup with an empty result.)
        if not await Ticket.objects.filter(pk=self.ticket_id).aexists():
            await self.refuse(404, f"there is no ticket {self.ticket_id}")
            return
        self.username = user.get_username()
        self.user_pk = str(user.pk)
        self.groups = [group_name(self.ticket_id)]
        await self.channel_layer.group_add(self.groups[0], self.channel_name)
        await self.accept()
        await self.send_json(
            {"type": "hello", "ticket": self.ticket_id, "user": self.username, "pid": os.getpid()}
        )

    async def refuse(self, status: int, reason: str) -> None:
        """Refuse the handshake with ``status`` and ``reason``."""
        if "websocket.http.response" in (self.scope.get("extensions") or {}):
            # ASGI websocket spec, "Denial Response": an HTTP response instead of the accept.
            await self.base_send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await self.base_send(
                {
                    "type": "websocket.http.response.body",
                    "body": reason.encode(),
                    "more_body": False,
                }
            )
        else:
            await self.close(code=CLOSE_LOGGED_OUT, reason=reason)

    async def still_logged_in(self) -> bool:
        """Whether the session of the handshake still belongs to its user.

        The session in ``scope`` was read at the handshake; a logout (Django's ``logout`` flushes
        the session: a new key, the old row deleted) or a login as someone else in another tab
        changes only the database. So read the session again, from the store.
        """
        key = self.scope["session"].session_key
        if key is None:
            return False
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
        user_id = await store.aget(SESSION_KEY)
        return user_id is not None and str(user_id) == self.user_pk

    async def comment_created(self, event: dict[str, Any]) -> None:
        """A ``comment.created`` of the group: pass it on, if the user is still logged in."""
        if await self.still_logged_in():
            await self.send_json(event)
        else:
            await self.close(code=CLOSE_LOGGED_OUT, reason="logged out")

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """A text frame that is JSON goes to `receive_json`; anything else is ignored."""
        if text_data is None:
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """A frame from the page: ``{"type": "comment", "body": ...}`` adds a comment."""
        if not await self.still_logged_in():
            await self.close(code=CLOSE_LOGGED_OUT, reason="logged out")
            return
        if not isinstance(content, dict) or content.get("type") != "comment":
            return  # nothing else is asked of the server; ignored
        body = content.get("body")
        if not isinstance(body, str) or not body.strip() or len(body) > MAX_BODY:
            await self.send_json({"type": "error", "reason": "a comment needs a body"})
            return
        from demo_projects.django_helpdesk.tickets.models import Comment

        # The author is the session's user, never what the page says. The post_save receiver
        # sends the comment to the group, this socket included.
        await Comment.objects.acreate(ticket_id=self.ticket_id, author=self.username, body=body)
