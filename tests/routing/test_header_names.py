"""The routers lowercase the response header names of the apps they call (ASGI spec: "Header
names must be lowercased"), so an app that sends ``Content-Type`` (Django's ``ASGIHandler``)
works over HTTP/2 and HTTP/3 behind them. Values, and apps that send lowercase names already,
are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from crossgate.routing import App, Fallback, Mount, PathRouter, ProtocolRouter
from crossgate.testing import http_scope
from crossgate.types import ASGIReceive, ASGISend, Message, StartResponse, WSGIEnvironment
from tests.routing.conftest import Router, WebSocketClient, run

MIXED = [(b"Content-Type", b"Text/Plain"), (b"X-Request-ID", b"AbC"), (b"vary", b"Cookie")]
LOWER = [(b"content-type", b"Text/Plain"), (b"x-request-id", b"AbC"), (b"vary", b"Cookie")]


async def mixed_case_app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    """Sends mixed-case names, as Django's ASGIHandler does."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept", "headers": list(MIXED)})
        await send({"type": "websocket.close", "code": 1000})
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": list(MIXED), "trailers": True}
    )
    await send({"type": "http.response.body", "body": b"ok"})
    await send({"type": "http.response.trailers", "headers": iter([(b"X-Checksum", b"Ab")])})


async def denying_app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    await receive()
    await send({"type": "websocket.http.response.start", "status": 403, "headers": list(MIXED)})
    await send({"type": "websocket.http.response.body", "body": b"no"})


def legacy(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"legacy"]


def routers_around(app: App) -> Iterator[Router]:
    yield ProtocolRouter({"http": app, "websocket": app})
    yield PathRouter([Mount("/in", app)])
    yield PathRouter([], default=app)
    # The app first (it answers 200), and behind a legacy WSGI app that answers 404.
    yield Fallback(app, legacy)
    yield Fallback(legacy, app)


def names(message: Message) -> list[Any]:
    return [name for name, _ in message["headers"]]


@pytest.mark.parametrize("index", range(5))
def test_http_response_and_trailer_names_are_lowercased(index: int) -> None:
    router = list(routers_around(mixed_case_app))[index]
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(dict(message))

    try:
        run(lambda: router(http_scope("GET", "/in/x"), receive, send))
    finally:
        router.close()
    start, _, trailers = sent
    assert start["headers"] == LOWER
    assert names(trailers) == [b"x-checksum"]
    assert trailers["headers"][0][1] == b"Ab"


@pytest.mark.parametrize("app", [mixed_case_app, denying_app])
@pytest.mark.parametrize("mounted", [False, True])
def test_websocket_accept_and_denial_names_are_lowercased(app: App, mounted: bool) -> None:
    router = PathRouter([Mount("/in", app)]) if mounted else ProtocolRouter({"websocket": app})
    client = WebSocketClient()
    scope = http_scope(path="/in/ws", type="websocket")
    run(lambda: router(scope, client.receive, client.send))
    assert client.sent[0]["headers"] == LOWER


def test_lowercase_names_go_through_as_sent() -> None:
    headers = [(b"content-type", b"text/plain")]
    seen: list[Message] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        message = {"type": "http.response.start", "status": 200, "headers": headers}
        await send(message)
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Message) -> None:
        seen.append(message)

    async def receive() -> Message:  # pragma: no cover - the app never reads the body
        raise AssertionError

    run(lambda: ProtocolRouter({"http": app})(http_scope(), receive, send))
    assert seen[0]["headers"] is headers
