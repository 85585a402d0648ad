"""A bare Channels consumer behind ``ProtocolRouter``, for ``test_routing_uvicorn.py``.

``uvicorn --lifespan on tests.servers.routing_channels:application`` serves a Starlette app for
HTTP and a Channels consumer, with no Channels middleware, for websockets (issue 17). The
consumer takes ``lifespan.startup`` and raises "No handler for message type lifespan.startup":
the router's lifespan fan-out must say once, at INFO and without a traceback, that it does not
support lifespan, and serve it.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from crossgate.routing import ProtocolRouter
from tests.servers.routing_log import log_crossgate_to_stderr

log_crossgate_to_stderr()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.servers.django_app.settings")

import django  # noqa: E402 - needs the settings module set

django.setup()

from channels.generic.websocket import (  # noqa: E402 - after setup()
    AsyncWebsocketConsumer,
)


class Echo(AsyncWebsocketConsumer):
    """Echoes each text frame back, upper-cased."""

    async def receive(self, text_data: str | None = None, bytes_data: Any = None) -> None:
        await self.send(text_data=(text_data or "").upper())


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("http side")


application = ProtocolRouter(
    {"http": Starlette(routes=[Route("/", home)]), "websocket": Echo.as_asgi()}
)
