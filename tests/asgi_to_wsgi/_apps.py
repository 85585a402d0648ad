"""Small ASGI apps the ASGIToWSGI tests serve."""

from __future__ import annotations

from typing import Any

from crossgate.types import ASGIReceive, ASGISend, Message

TEXT = [(b"content-type", b"text/plain")]


async def read_body(receive: ASGIReceive) -> tuple[bytes, list[Message]]:
    """The whole request body, and every message ``receive()`` gave on the way."""
    messages: list[Message] = []
    body = b""
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return body, messages
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body, messages


async def respond(send: ASGISend, body: bytes, status: int = 200, headers: Any = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": TEXT if headers is None else headers,
        }
    )
    await send({"type": "http.response.body", "body": body})


async def hello(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    if scope["type"] != "http":
        return
    await respond(send, b"hello")


async def echo(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    """Answers the request body, and in headers how many messages it came in."""
    if scope["type"] != "http":
        return
    body, messages = await read_body(receive)
    kinds = ",".join(str(m["type"]) for m in messages)
    await respond(send, body, headers=[*TEXT, (b"x-messages", kinds.encode())])
