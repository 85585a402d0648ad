"""Shared pieces of the router tests: small ASGI apps, a websocket client, leak checks."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from crossgate.routing import Fallback, PathRouter, ProtocolRouter
from crossgate.types import ASGIReceive, ASGISend, Message
from tests.adapters.conftest import run, thread_leak_check

Router = ProtocolRouter | PathRouter | Fallback

__all__ = [
    "Recorder",
    "Router",
    "WebSocketClient",
    "run",
    "text_app",
    "thread_leak_check",
]


class Recorder:
    """An ASGI app answering ``text``, that keeps every scope it was called with."""

    def __init__(self, text: str = "ok", status: int = 200) -> None:
        self.text = text
        self.status = status
        self.scopes: list[Message] = []

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        self.scopes.append(scope)
        if scope["type"] == "lifespan":
            raise ValueError("Recorder does not do lifespan")
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": self.text})
            await send({"type": "websocket.close", "code": 1000})
            return
        body = self.text.encode()
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"text/plain"), (b"x-app", body)],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @property
    def scope(self) -> Message:
        return self.scopes[-1]


def text_app(text: str, status: int = 200) -> Recorder:
    return Recorder(text, status)


class WebSocketClient:
    """The server side of one websocket as a test sees it: scripted client messages in, the
    app's messages out. When the script runs out, the client disconnects."""

    def __init__(self, *messages: Mapping[str, Any]) -> None:
        self.script: deque[Message] = deque(dict(m) for m in messages) or deque(
            [{"type": "websocket.connect"}]
        )
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self.script:
            return self.script.popleft()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(self, message: Message) -> None:
        self.sent.append(dict(message))

    @property
    def types(self) -> list[str]:
        return [str(m["type"]) for m in self.sent]


@pytest.fixture
def routers(thread_leak_check: None) -> Iterator[list[Router]]:
    """Routers appended here have their WSGI thread pools closed after the test."""
    made: list[Router] = []
    yield made
    for router in made:
        router.close()


@pytest.fixture(autouse=True)
def _no_thread_left(thread_leak_check: None) -> None:
    """Every test here fails if it leaves a thread running (a WSGIToASGI pool not closed)."""
