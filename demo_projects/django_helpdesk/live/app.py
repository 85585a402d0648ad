"""What stages 2 and 3 share: the websocket side, and the protocol router.

The seed's ``asgi.py`` with `crossgate.routing.ProtocolRouter` in the place of Channels'
``ProtocolTypeRouter``; the websocket side is Channels as its docs show it:

    ProtocolRouter({
        "http": http,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter([
            path("ws/tickets/<int:ticket_id>/", TicketConsumer.as_asgi()),
        ]))),
    })

crossgate's router answers the server's lifespan itself (Channels' router raises for it) and
fans it out; nothing in Channels needs lifespan. At shutdown the router closes the channel
layer's Redis connections (`close_channel_layer`), so the worker stops without leaving them to
the garbage collector.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from crossgate.routing import App, ProtocolRouter
from demo_projects.django_helpdesk.live.consumers import TicketConsumer
from demo_projects.django_helpdesk.live.signals import connect_comment_signal

__all__ = ["close_channel_layer", "live_application", "websocket_application"]

_log = logging.getLogger("demo_projects.django_helpdesk.live")


def websocket_application() -> App:
    """The websocket side: origin check, then the session's user, then the URL's consumer.

    ``AllowedHostsOriginValidator`` refuses a handshake whose ``Origin`` is not one of
    ``ALLOWED_HOSTS`` (a page of another site opening a socket with the user's cookie);
    crossgate's `OriginCheck` does the same job (``docs/channels.md``).
    ``AuthMiddlewareStack`` reads the session cookie and puts the user in ``scope["user"]``.
    """
    # django-stubs types path() for views only; URLRouter takes it for ASGI apps as well.
    consumer: Any = TicketConsumer.as_asgi()
    routes: list[Any] = [path("ws/tickets/<int:ticket_id>/", consumer)]
    return AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(routes)))


async def close_channel_layer() -> None:
    """Close the channel layer's connections (``channels_redis``: its Redis pools; the
    in-memory layer: drop what it holds). Run at lifespan shutdown."""
    layer = get_channel_layer()
    close_pools = getattr(layer, "close_pools", None)
    if close_pools is not None:
        await close_pools()
        _log.info("closed the channel layer's Redis connections")
    elif layer is not None:
        await layer.flush()


def live_application(http: App) -> ProtocolRouter:
    """Route websockets to the Channels consumers and HTTP to ``http``.

    Connects the comment ``post_save`` receiver. Call it once Django is set up (importing the
    stage 1 application does that).

    Raises:
        ValueError: ``HELPDESK_ASYNC_TO_SYNC`` names neither crossgate nor asgiref.
    """
    connect_comment_signal()
    _log.info("live updates through %s", type(get_channel_layer()).__name__)
    return ProtocolRouter(
        {"http": http, "websocket": websocket_application()},
        on_shutdown=[close_channel_layer],
    )
