"""The hello-world app five ways, for ``uvicorn bench.server_apps:<name>`` (or another server).

``native`` answers lifespan itself; the adapters answer it as they do for their users (asgiref
raises for it, which uvicorn's ``--lifespan auto`` treats as "not supported").

``floor`` is the least any WSGI-in-ASGI adapter must do: one ``run_in_executor`` round trip per
request that calls the WSGI app with a minimal environ and checks nothing. No adapter can beat
it, so an adapter's share of it says how much of the remaining cost is the adapter's own.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast
from wsgiref.types import WSGIApplication

from a2wsgi import WSGIMiddleware
from asgiref.wsgi import WsgiToAsgi

from bench.a2w_apps import with_lifespan
from bench.apps import hello_asgi, hello_wsgi
from bench.harness import ASGIApp, Receive, Send
from crossgate import WSGIToASGI

__all__ = ["a2wsgi", "asgiref", "crossgate", "floor", "native"]


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


# As many threads as WSGIToASGI's own pool has by default. Threads start on first use, so a
# server that forks its workers after importing this module gets a working pool in each one.
_FLOOR_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="floor")


def _call_wsgi(environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    answer: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer[:] = [int(status[:3]), [(k.lower().encode(), v.encode()) for k, v in headers]]

    body: Iterable[bytes] = hello_wsgi(environ, cast(Any, start_response))
    return answer[0], answer[1], b"".join(body)


async def _floor(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    environ = {
        "REQUEST_METHOD": scope["method"],
        "PATH_INFO": scope["path"],
        "QUERY_STRING": "",
        "wsgi.errors": sys.stderr,
    }
    loop = asyncio.get_running_loop()
    status, headers, body = await loop.run_in_executor(_FLOOR_POOL, _call_wsgi, environ)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


floor: ASGIApp = with_lifespan(_floor)
