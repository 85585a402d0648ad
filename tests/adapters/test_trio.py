"""WSGIToASGI under trio, in process: a clear refusal at lifespan startup and at a request.

crossgate's WSGIToASGI runs on asyncio only (issue 14 item 10); the real server case is in
``tests/servers/test_trio.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from crossgate import CrossgateError
from crossgate.adapters.wsgi_to_asgi import ASYNCIO_ONLY
from crossgate.testing import http_scope
from tests.adapters.conftest import CountingApp, MakeAdapter

trio = pytest.importorskip("trio")


class _Channel:
    """``receive`` hands out the given messages in turn; ``send`` records what it is given."""

    def __init__(self, *incoming: dict[str, Any]) -> None:
        self.incoming = list(incoming)
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        return self.incoming.pop(0)

    async def send(self, message: dict[str, Any]) -> None:
        await trio.lowlevel.checkpoint()
        self.sent.append(message)


def test_lifespan_startup_fails_under_trio(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []
    adapter = make_adapter(CountingApp(), on_startup=[lambda: ran.append("startup")])
    channel = _Channel({"type": "lifespan.startup"})

    with caplog.at_level(logging.ERROR, logger="crossgate"):
        trio.run(adapter, {"type": "lifespan"}, channel.receive, channel.send)

    assert channel.sent == [{"type": "lifespan.startup.failed", "message": ASYNCIO_ONLY}]
    assert ran == []
    assert ASYNCIO_ONLY in caplog.text


def test_a_request_under_trio_gets_a_500_and_raises(make_adapter: MakeAdapter) -> None:
    app = CountingApp()
    adapter = make_adapter(app)
    channel = _Channel({"type": "http.request", "body": b"", "more_body": False})

    with pytest.raises(CrossgateError, match="asyncio only"):
        trio.run(adapter, http_scope("GET", "/"), channel.receive, channel.send)

    assert [m["type"] for m in channel.sent] == ["http.response.start", "http.response.body"]
    assert channel.sent[0]["status"] == 500
    assert app.calls == 0
