"""Apps that make crossgate log an error, served by uvicorn and gunicorn as they come.

No logging configuration here on purpose: the test reads what crossgate's records look like
under each server's default logging.
"""

from __future__ import annotations

from collections.abc import Iterable
from wsgiref.validate import validator

from crossgate import ASGIToWSGI, WSGIToASGI
from crossgate.types import ASGIReceive, ASGISend, Message, StartResponse, WSGIEnvironment


def _wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/broken":
        raise RuntimeError("the WSGI app broke on purpose")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


async def _asgi(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/broken":
        raise RuntimeError("the ASGI app broke on purpose")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


# raise_app_exceptions=False: crossgate answers and logs the failure itself at ERROR (by
# default the exception goes on to the server, which logs it, and crossgate says so at INFO).
wsgi_in_asgi = WSGIToASGI(validator(_wsgi), raise_app_exceptions=False)
"""For uvicorn."""

asgi_in_wsgi = ASGIToWSGI(_asgi, lifespan="off", raise_app_exceptions=False)
"""For gunicorn."""
