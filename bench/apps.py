"""The applications under test: each WSGI app has a native ASGI twin doing the same work.

Response chunks are built once, at import, so neither side pays for allocating them per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from bench.harness import ASGIApp, Message, Receive, Send

__all__ = [
    "HELLO",
    "READ_SIZE",
    "hello_asgi",
    "hello_wsgi",
    "stream_asgi",
    "stream_wsgi",
    "upload_asgi",
    "upload_wsgi",
]

HELLO = b"Hello, world!"
READ_SIZE = 64 * 1024

_HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
_HELLO_RAW_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(HELLO))]


def hello_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", _HELLO_HEADERS)
    return [HELLO]


async def hello_asgi(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _HELLO_RAW_HEADERS})
    await send({"type": "http.response.body", "body": HELLO})


def stream_wsgi(total: int, chunk_size: int) -> WSGIApplication:
    """A WSGI app answering ``total`` bytes from a generator of ``chunk_size`` pieces."""
    chunk = b"x" * chunk_size
    count = total // chunk_size
    headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(total))]

    def body() -> Iterator[bytes]:
        for _ in range(count):
            yield chunk

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", headers)
        return body()

    return app


def stream_asgi(total: int, chunk_size: int) -> ASGIApp:
    """The native twin of :func:`stream_wsgi`: one ``http.response.body`` per chunk."""
    chunk = b"x" * chunk_size
    count = total // chunk_size
    start: Message = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(total).encode()),
        ],
    }

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await send(start)
        for _ in range(count):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def upload_wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Read the whole body in ``READ_SIZE`` pieces, keep nothing, answer the byte count.

    PEP 3333 ("Input and Error Streams"): an app must not read past ``CONTENT_LENGTH``.
    """
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    seen = 0
    while remaining > 0:
        data = stream.read(min(READ_SIZE, remaining))
        if not data:
            break
        seen += len(data)
        remaining -= len(data)
    answer = str(seen).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


async def upload_asgi(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    answer = str(seen).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(answer)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})
