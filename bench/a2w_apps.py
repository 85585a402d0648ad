"""The apps of the ASGIToWSGI benchmark and the contenders that serve them as WSGI.

Each scenario has an ASGI app and its native WSGI twin doing the same work (``bench.apps``).
The contenders: the WSGI twin itself (``native``), ``ASGIToWSGI`` in inline and in shared mode,
and a2wsgi's ``ASGIMiddleware``, the only maintained peer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from bench.harness import ASGIApp, Receive, Send

__all__ = ["CHUNK", "CONTENDERS", "build", "download_asgi", "download_wsgi", "with_lifespan"]

CONTENDERS = ("native", "crossgate", "crossgate-shared", "a2wsgi")
CHUNK = 64 * 1024
# Download chunks are fresh copies of this, one per message, as they would be out of a file.
_TEMPLATE = bytearray(b"x" * CHUNK)


def with_lifespan(app: ASGIApp) -> ASGIApp:
    """``app`` answering the lifespan protocol, as a real framework does."""

    async def wrapped(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await app(scope, receive, send)

    return wrapped


def download_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Answer as many bytes as the query string says, in ``CHUNK`` pieces."""
    count = int(environ["QUERY_STRING"]) // CHUNK
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(count * CHUNK))],
    )
    return (bytes(_TEMPLATE) for _ in range(count))


async def download_asgi(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    count = int(scope["query_string"]) // CHUNK
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(count * CHUNK).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for _ in range(count):
        await send({"type": "http.response.body", "body": bytes(_TEMPLATE), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _nothing() -> None:
    return None


def build(
    contender: str, asgi_app: ASGIApp, wsgi_app: WSGIApplication
) -> tuple[WSGIApplication, Callable[[], None]]:
    """The WSGI app ``contender`` serves, and how to shut it down.

    Imports are deferred, so a child process measuring one contender loads only that one.
    """
    if contender == "native":
        return wsgi_app, _nothing
    if contender in ("crossgate", "crossgate-shared"):
        from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI

        # bench.harness types ASGI messages as dict, crossgate as MutableMapping: the same at
        # runtime, but not the same parameter type to mypy.
        app = cast(Any, with_lifespan(asgi_app))
        if contender == "crossgate":
            adapter = ASGIToWSGI(app, mode="inline")
        else:
            adapter = ASGIToWSGI(app, mode="shared")
        return cast(WSGIApplication, adapter), adapter.shutdown
    if contender == "a2wsgi":
        from a2wsgi import ASGIMiddleware

        # a2wsgi never runs lifespan; its loop thread is a daemon it never stops.
        return cast(WSGIApplication, ASGIMiddleware(cast(Any, asgi_app))), _nothing
    raise ValueError(f"unknown contender {contender!r}; pick one of {', '.join(CONTENDERS)}")
