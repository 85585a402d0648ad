"""crossgate's routers and Channels' `URLRouter` nested in each other, and crossgate's
`OriginCheck` in the place of Channels' `AllowedHostsOriginValidator`, on the helpdesk's
settings (for `test_channels.py`, served by a real uvicorn).

Every websocket reaches `ScopeEcho`, which accepts, sends what it was given (``path``,
``root_path``, the URL's keyword arguments, the session's user) as one JSON frame, and closes.
"""

from __future__ import annotations

import os
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import URLRouter
from django.urls import path, re_path

from crossgate import OriginCheck
from crossgate.routing import Mount, PathRouter, ProtocolRouter

os.environ.setdefault("HELPDESK_STAGE", "2")

# Imported after the stage is set; it sets Django up.
from demo_projects.django_helpdesk.stage1 import application as legacy


class ScopeEcho(AsyncJsonWebsocketConsumer):
    """Accept, report the scope, close."""

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        await self.send_json(
            {
                "path": self.scope["path"],
                "root_path": self.scope.get("root_path", ""),
                "kwargs": self.scope.get("url_route", {}).get("kwargs", {}),
                "user": user.get_username() if user is not None and user.is_authenticated else None,
            }
        )
        await self.close()


def _routes(*routes: Any) -> list[Any]:
    # django-stubs types path() for views only; URLRouter takes ASGI apps as well.
    return list(routes)


echo: Any = ScopeEcho.as_asgi()
# Channels' middleware, typed by the stubs for Channels' own scope types; crossgate's for any.
session_stack: Any = AuthMiddlewareStack(URLRouter(_routes(path("room/<str:name>/", echo))))
inner_router: Any = PathRouter([Mount("/in/crossgate", echo)])

# The origins AllowedHostsOriginValidator derives from ALLOWED_HOSTS, as OriginCheck patterns.
ALLOWED_ORIGINS = [
    f"{scheme}://{host}:*" for scheme in ("http", "https") for host in ("127.0.0.1", "localhost")
]

application = ProtocolRouter(
    {
        "http": legacy,
        "websocket": PathRouter(
            [
                # crossgate outside, Channels inside: the mount sets root_path, and URLRouter
                # (outermost of its kind) matches the path below it, as the ASGI spec has it.
                Mount("/channels", URLRouter(_routes(path("room/<str:name>/", echo)))),
                # OriginCheck doing AllowedHostsOriginValidator's job, in front of the session.
                Mount(
                    "/checked",
                    OriginCheck(session_stack, allowed_origins=ALLOWED_ORIGINS),
                ),
            ],
            # Channels outside, crossgate inside: a re_path without "$" hands every path below
            # "in/" to the PathRouter, which matches its mounts on the full path.
            default=URLRouter(_routes(re_path(r"^in/", inner_router))),
        ),
    }
)
