"""Apps ``crossgate serve`` serves in the CLI tests: one WSGI, one ASGI, and mistakes.

Both real apps answer ``/`` with which kind they are, echo a POST body at ``/echo`` and, at
``/broken``, break their spec so the adapter logs an error (what the logging tests read).
"""

from __future__ import annotations

from collections.abc import Iterable
from wsgiref.validate import validator

from crossgate.types import ASGIReceive, ASGISend, Message, StartResponse, WSGIEnvironment


def _wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/broken":
        raise RuntimeError("the WSGI app broke on purpose")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi app"]


wsgi_app = validator(_wsgi)


async def asgi_app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/broken":
        raise RuntimeError("the ASGI app broke on purpose")
    answer = body if scope["path"] == "/echo" else b"asgi app"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": answer})


not_an_app = "a string"
