"""Apps for ``hypercorn -k trio``: WSGIToASGI refuses an event loop other than asyncio.

``application`` is the adapter itself: lifespan startup fails. ``no_lifespan`` answers lifespan
on its own and hands every request to the adapter, as a server without lifespan would: each
request gets a 500, and the server's log says why.
"""

from __future__ import annotations

from typing import Any

from crossgate import WSGIToASGI
from crossgate.types import ASGIReceive, ASGISend, StartResponse, WSGIEnvironment


def hello(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


application = WSGIToASGI(hello)


async def no_lifespan(scope: Any, receive: ASGIReceive, send: ASGISend) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await application(scope, receive, send)
