"""ASGIToWSGI when the client leaves: the WSGI server stops iterating and calls ``close()``.

The app's next ``receive()`` answers ``http.disconnect``, ``send()`` raises an ``OSError`` (ASGI
HTTP spec 2.4, "Disconnected Client"), and a task that does not end by itself is cancelled after
``disconnect_grace``. No task is ever left pending: pytest's ``filterwarnings = error`` and the
checks below would catch one.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from crossgate.exceptions import ClientDisconnected
from crossgate.types import ASGIReceive, ASGISend, Message
from tests.asgi_to_wsgi._apps import TEXT
from tests.asgi_to_wsgi.conftest import MakeAdapter, run_wsgi

WAIT = 5.0


class Outcome:
    """What the app saw, reported from whichever thread runs it."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.done = threading.Event()

    def add(self, event: str) -> None:
        self.events.append(event)


def _streaming_app(outcome: Outcome, *, ignore_disconnect: bool = False) -> Any:
    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        try:
            await receive()  # the (empty) body
            await send({"type": "http.response.start", "status": 200, "headers": TEXT})
            number = 0
            while True:
                try:
                    await send({"type": "http.response.body", "body": b"tick", "more_body": True})
                except OSError as exc:
                    outcome.add(f"send raised {type(exc).__name__}")
                    message = await receive()
                    outcome.add(f"receive gave {message['type']}")
                    if ignore_disconnect:
                        await asyncio.sleep(3600)
                    return
                number += 1
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            outcome.add("cancelled")
            raise
        finally:
            outcome.done.set()

    return app


def test_send_raises_and_receive_says_disconnect_once_the_server_closes(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = Outcome()

    result = run_wsgi(make_adapter(_streaming_app(outcome)), stop_after=2)

    assert result.body.startswith(b"ticktick")
    assert outcome.done.wait(WAIT)
    assert outcome.events == [
        f"send raised {ClientDisconnected.__name__}",
        "receive gave http.disconnect",
    ]
    assert issubclass(ClientDisconnected, OSError)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_app_ignoring_the_disconnect_is_cancelled_after_the_grace_period(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = Outcome()

    run_wsgi(
        make_adapter(_streaming_app(outcome, ignore_disconnect=True), disconnect_grace=0.05),
        stop_after=1,
    )

    assert outcome.done.wait(WAIT)
    assert outcome.events[-1] == "cancelled"
    assert any("cancelling the ASGI app" in r.getMessage() for r in caplog.records)


def test_starlette_streaming_response_stops_when_the_client_leaves(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    # Starlette (ASGI spec >= 2.4) stops a StreamingResponse when send() raises OSError.
    closed = threading.Event()

    async def events(request: Request) -> StreamingResponse:
        async def ticks() -> AsyncIterator[bytes]:
            try:
                number = 0
                while True:
                    yield f"data: tick {number}\n\n".encode()
                    number += 1
                    await asyncio.sleep(0)
            finally:
                closed.set()

        return StreamingResponse(ticks(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/sse", events)])

    result = run_wsgi(make_adapter(app), path="/sse", stop_after=3)

    assert result.body.startswith(b"data: tick 0\n\n")
    assert closed.wait(WAIT)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def _pending_tasks(adapter: ASGIToWSGI) -> list[asyncio.Task[Any]]:
    process = adapter._process
    assert process is not None
    if process.thread is not None:

        async def others() -> list[asyncio.Task[Any]]:
            return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

        return asyncio.run_coroutine_threadsafe(others(), process.thread.loop).result(WAIT)
    return [task for loop in process.all() for task in asyncio.all_tasks(loop)]


def test_many_early_closes_leave_no_pending_task(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    # a2wsgi leaves one pending task per early-closed response ("Task was destroyed but it is
    # pending", PEERS.md). Here every task ends or is cancelled, and the loops close cleanly.
    outcomes: list[Outcome] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        outcome = Outcome()
        outcomes.append(outcome)
        ignore = scope["query_string"] == b"ignore"
        await _streaming_app(outcome, ignore_disconnect=ignore)(scope, receive, send)

    adapter = make_adapter(app, disconnect_grace=0.01)

    def client_thread(first: int) -> None:
        for number in range(first, first + 15):
            run_wsgi(adapter, query="ignore" if number % 3 == 0 else "", stop_after=1)

    # Four WSGI threads at once (each with its own loop in inline mode, all on the one loop in
    # shared mode), 15 early-closed responses each.
    threads = [threading.Thread(target=client_thread, args=(15 * n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len(outcomes) == 60
    for outcome in outcomes:
        assert outcome.done.wait(WAIT)
    # Before shutdown (which would cancel anything left): no task of a finished request is
    # still pending on any loop, and none is waiting to be destroyed.
    gc.collect()
    assert _pending_tasks(adapter) == []
    adapter.shutdown()
    gc.collect()

    assert sum("cancelled" in outcome.events for outcome in outcomes) == 20
    destroyed = [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
    assert destroyed == []
