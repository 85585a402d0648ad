"""The strangler fig, for ``test_routing_uvicorn.py``: FastAPI first, Django for the rest.

``uvicorn tests.servers.routing_strangler:application`` serves a FastAPI app and, for whatever
it answers 404, Django's own ``get_asgi_application()`` (the ``tests/servers/django_app``
project), which raises on the lifespan scope: the router must skip it quietly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request

from crossgate.routing import Fallback
from tests.servers._rendezvous import server_log
from tests.servers.routing_log import log_crossgate_to_stderr

log_crossgate_to_stderr()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.servers.django_app.settings")

from django.core.asgi import get_asgi_application  # noqa: E402 - needs the settings module set


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    server_log("fastapi-lifespan-startup")
    yield
    server_log("fastapi-lifespan-shutdown")


api = FastAPI(lifespan=lifespan)


@api.get("/api/hello")
async def hello() -> dict[str, str]:
    return {"from": "fastapi"}


@api.post("/form")
async def form(request: Request) -> dict[str, str]:
    # Reads the whole body, then declines most of it: the body must reach Django all the same.
    fields = parse_qs((await request.body()).decode())
    name = fields.get("name", [""])[0]
    if name != "fastapi":
        raise HTTPException(status_code=404)
    return {"hello": name}


application = Fallback(api, get_asgi_application())
