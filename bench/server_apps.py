"""The hello-world app four ways, for ``uvicorn bench.server_apps:<name>``.

``native`` answers lifespan itself; the adapters answer it as they do for their users (asgiref
raises for it, which uvicorn's ``--lifespan auto`` treats as "not supported").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from wsgiref.types import WSGIApplication

from a2wsgi import WSGIMiddleware
from asgiref.wsgi import WsgiToAsgi

from bench.apps import hello_asgi, hello_wsgi
from bench.harness import ASGIApp, Receive, Send
from crossgate import WSGIToASGI

__all__ = ["a2wsgi", "asgiref", "crossgate", "native"]


async def native(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await hello_asgi(scope, receive, send)


crossgate: ASGIApp = cast(ASGIApp, WSGIToASGI(hello_wsgi))
a2wsgi: ASGIApp = cast(ASGIApp, WSGIMiddleware(cast(Any, hello_wsgi)))
# asgiref's constructor is unannotated.
asgiref: ASGIApp = cast(Callable[[WSGIApplication], ASGIApp], WsgiToAsgi)(hello_wsgi)
