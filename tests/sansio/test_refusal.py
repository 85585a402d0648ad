"""Refusing a connection (``crossgate.sansio.refusal``) and sending the refusal
(``crossgate._answer``): one shape for the routers, ``WSGIToASGI`` and the middleware."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import pytest

from crossgate._answer import refuse
from crossgate.sansio.refusal import MAX_CLOSE_REASON, close_reason, refusal_events
from crossgate.types import Message


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("short", "short"),
        ("a" * 123, "a" * 123),
        ("a" * 124, "a" * 123),
        # A two-byte character across the limit is dropped whole, never cut in half.
        ("a" * 122 + "é", "a" * 122),
        ("é" * 70, "é" * 61),
        ("€" * 50, "€" * 41),  # three bytes each: 41 * 3 = 123
        ("🙂" * 40, "🙂" * 30),  # four bytes each: 120
    ],
)
def test_close_reason_fits_rfc_6455(reason: str, expected: str) -> None:
    cut = close_reason(reason)
    assert cut == expected
    assert len(cut.encode("utf-8")) <= MAX_CLOSE_REASON


WS: dict[str, Any] = {"type": "websocket"}
DENIAL: dict[str, Any] = {"type": "websocket", "extensions": {"websocket.http.response": {}}}


@pytest.mark.parametrize(
    ("scope", "status", "types", "code"),
    [
        ({"type": "http"}, 404, ["http.response.start", "http.response.body"], None),
        (DENIAL, 403, ["websocket.http.response.start", "websocket.http.response.body"], None),
        (WS, 403, ["websocket.close"], 1008),
        (WS, 404, ["websocket.close"], 1008),
        (WS, 500, ["websocket.close"], 1011),  # RFC 6455 section 7.4.1: internal error
    ],
)
def test_refusal_events(scope: Any, status: int, types: list[str], code: int | None) -> None:
    events = refusal_events(scope, status, "x" * 200, headers=((b"x-why", b"test"),))
    assert [e["type"] for e in events] == types
    if code is None:
        assert events[0]["status"] == status
        assert (b"x-why", b"test") in events[0]["headers"]
        phrase = HTTPStatus(status).phrase
        assert events[1]["body"] == f"{status} {phrase}: {'x' * 200}\n".encode()
    else:
        assert events[0]["code"] == code
        assert events[0]["reason"] == "x" * 123


def _drive(scope: Any, first: Message) -> tuple[list[Message], int]:
    sent: list[Message] = []
    asked = 0

    async def receive() -> Message:
        nonlocal asked
        asked += 1
        return first

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(refuse(scope, receive, send, 403, "no"))
    return sent, asked


def test_a_websocket_refusal_answers_the_connect_event() -> None:
    # ASGI spec, websocket "Connect - receive event": the server sends websocket.connect during
    # the handshake and waits for the app's reply; the close (or denial) is that reply.
    sent, asked = _drive(WS, {"type": "websocket.connect"})
    assert asked == 1
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "no"}]


def test_a_client_gone_before_the_handshake_gets_nothing() -> None:
    sent, asked = _drive(DENIAL, {"type": "websocket.disconnect", "code": 1001})
    assert (sent, asked) == ([], 1)


def test_an_http_refusal_reads_nothing() -> None:
    sent, asked = _drive({"type": "http"}, {"type": "http.request"})
    assert asked == 0
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
