"""One ASGI entry point over old and new apps, for ``test_routing_uvicorn.py``.

``uvicorn tests.servers.routing_mixed:application`` serves:

* websockets: a Starlette websocket endpoint (``/ws/echo``), beside
* HTTP: Flask (WSGI) mounted at ``/legacy``, a Django WSGI project at ``/django``, and a
  Starlette app with a lifespan for everything else.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from crossgate.routing import Mount, PathRouter, ProtocolRouter
from tests.servers._rendezvous import server_log
from tests.servers.routing_log import log_crossgate_to_stderr

log_crossgate_to_stderr()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.servers.routing_django")

from django.core.wsgi import get_wsgi_application  # noqa: E402 - needs the settings module set

# -- the legacy Flask app, mounted at /legacy ----------------------------------------------------

legacy = flask.Flask(__name__)


@legacy.get("/")
def legacy_index() -> str:
    return "legacy index"


@legacy.get("/links")
def legacy_links() -> dict[str, str]:
    return {
        "form": flask.url_for("legacy_form"),
        "external": flask.url_for("legacy_form", _external=True),
        "script_name": flask.request.environ["SCRIPT_NAME"],
        "path_info": flask.request.environ["PATH_INFO"],
    }


@legacy.post("/form")
def legacy_form() -> str:
    return f"hello {flask.request.form['name']}"


# -- the new Starlette app, for everything else ---------------------------------------------------


@contextlib.asynccontextmanager
async def site_lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
    server_log("starlette-lifespan-startup")
    yield {"greeting": "state from the starlette lifespan"}
    server_log("starlette-lifespan-shutdown")


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"starlette: {request.state.greeting}")


site = Starlette(routes=[Route("/", home)], lifespan=site_lifespan)


# -- websockets -----------------------------------------------------------------------------------


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"echo: {text}")


sockets = Starlette(routes=[WebSocketRoute("/ws/echo", echo)])

application = ProtocolRouter(
    {
        "http": PathRouter(
            [Mount("/legacy", legacy), Mount("/django", get_wsgi_application())], default=site
        ),
        "websocket": sockets,
    }
)
