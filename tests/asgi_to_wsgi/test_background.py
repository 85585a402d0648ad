"""ASGIToWSGI and work after the response (Starlette ``BackgroundTasks``).

The client's response is complete once the app sends its last body message: the iterable ends
there. The app's task keeps running until it is done or ``background_timeout`` expires (inline
mode runs it in ``close()``, which gunicorn calls after writing the last chunk; shared mode on
the loop thread), and what is left at shutdown is cancelled cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTasks
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from crossgate import ASGIToWSGI
from crossgate.types import ASGIReceive, ASGISend, Message
from tests.asgi_to_wsgi._apps import respond
from tests.asgi_to_wsgi.conftest import (
    MakeAdapter,
    ignore_start,
    make_environ,
    run_wsgi,
    wait_until,
)

WAIT = 5.0


def _starlette_app(gate: threading.Event, log: list[str]) -> Starlette:
    async def work() -> None:
        # Waits (in a thread, as a sync task would) for the test to say it has the response.
        released = await asyncio.to_thread(gate.wait, WAIT)
        log.append("background done" if released else "background gave up")

    async def endpoint(request: Request) -> PlainTextResponse:
        tasks = BackgroundTasks()
        tasks.add_task(work)
        return PlainTextResponse("response", background=tasks)

    return Starlette(routes=[Route("/", endpoint)])


def test_background_tasks_run_after_the_response_is_complete(make_adapter: MakeAdapter) -> None:
    gate = threading.Event()
    log: list[str] = []
    adapter = make_adapter(_starlette_app(gate, log))
    received: list[bytes] = []

    iterable = adapter(make_environ(), ignore_start)
    try:
        # The whole response, to its end, while the background task is still waiting: an
        # adapter that ran it first would hold the response until the gate's bound ran out.
        for chunk in iterable:
            received.append(chunk)
        log.append("response complete")
        gate.set()
    finally:
        getattr(iterable, "close", lambda: None)()

    assert b"".join(received) == b"response"
    assert wait_until(lambda: len(log) == 2)
    assert log == ["response complete", "background done"]


def test_background_work_is_cancelled_after_the_timeout(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    outcome: list[str] = []
    finished = threading.Event()

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await respond(send, b"done")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        finally:
            finished.set()

    result = run_wsgi(make_adapter(app, background_timeout=0.05))

    assert result.body == b"done"
    assert finished.wait(WAIT)
    assert outcome == ["cancelled"]
    assert any("work after the response" in r.getMessage() for r in caplog.records)


def test_pending_background_work_is_cancelled_cleanly_at_shutdown(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    outcome: list[str] = []
    started = threading.Event()

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            outcome.append("lifespan shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return
        await respond(send, b"done")
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            outcome.append("cancelled at shutdown")
            raise

    adapter = make_adapter(app, background_timeout=3600)
    # A server that never calls close() leaves the work pending (inline mode); shared mode's
    # loop runs it regardless. Either way, shutdown must cancel it and leave nothing behind.
    environ = make_environ()
    iterable = adapter(environ, ignore_start)
    assert b"".join(iterable) == b"done"
    adapter.shutdown()

    assert started.is_set()
    # Work after the response is cancelled before the app's lifespan shutdown runs, so the
    # shutdown handler never closes a pool that work is still using.
    assert outcome == ["cancelled at shutdown", "lifespan shutdown"]
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]


def test_background_failure_is_logged_without_raising(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    finished = threading.Event()

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await respond(send, b"done")
        await asyncio.sleep(0)
        finished.set()
        raise RuntimeError("the e-mail could not be sent")

    result = run_wsgi(make_adapter(app, raise_app_exceptions=False))

    assert result.body == b"done"
    assert result.error is None
    assert finished.wait(WAIT)
    assert wait_until(lambda: any(r.levelno == logging.ERROR for r in caplog.records))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "the ASGI app failed after its response was complete"
    ]


def test_failure_after_the_response_is_raised_from_close(
    thread_leak_check: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Inline mode runs the work after the response in close(), after the server wrote the
    # whole body: what it raises reaches the server there (Sentry's WSGI middleware wraps
    # close() for this), and the client has its complete response.
    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await respond(send, b"done")
        await asyncio.sleep(0)
        raise RuntimeError("the e-mail could not be sent")

    adapter = ASGIToWSGI(app, mode="inline")
    try:
        with caplog.at_level(logging.INFO, logger="crossgate"):
            result = run_wsgi(adapter)
    finally:
        adapter.shutdown()

    assert result.body == b"done"
    assert isinstance(result.error, RuntimeError)
    lines = [r.getMessage() for r in caplog.records if r.name == "crossgate"]
    assert any("the client got the whole response" in line for line in lines)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_failure_after_the_response_is_raised_or_logged_once_in_shared_mode(
    thread_leak_check: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Shared mode does not wait for the app: what it raises is raised from the application
    # call or from close() when it has ended by then, else logged; exactly once either way
    # (never both, never neither).
    finished = threading.Event()

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await respond(send, b"done")
        await asyncio.sleep(0)
        finished.set()
        raise RuntimeError("the e-mail could not be sent")

    adapter = ASGIToWSGI(app, mode="shared")
    try:
        _serve_ten(adapter, finished, caplog)
    finally:
        adapter.shutdown()


def _crossgate_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "crossgate"]


def _serve_ten(
    adapter: ASGIToWSGI, finished: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(10):
        caplog.clear()
        finished.clear()
        result = run_wsgi(adapter, catch_call=True)
        assert finished.wait(WAIT)
        if result.call_error is not None:
            # The app had ended before the server got anything: raised from the call.
            assert isinstance(result.call_error, RuntimeError)
            assert _crossgate_errors(caplog) == []
            continue
        assert result.body == b"done"
        if result.error is None:
            assert wait_until(lambda: bool(_crossgate_errors(caplog)))
            assert len(_crossgate_errors(caplog)) == 1
        else:
            assert isinstance(result.error, RuntimeError)
            assert _crossgate_errors(caplog) == []


def test_failure_after_close_looked_is_logged_once_in_shared_mode(
    thread_leak_check: None, caplog: pytest.LogCaptureFixture
) -> None:
    # The app raises after the WSGI side's close() looked (the app had not ended), but
    # before the loop ran the "server closed" callback close() queued behind it: that
    # callback logs it. The app holds the loop thread until close() has returned, so the
    # order is fixed.
    closed = threading.Event()

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] != "http":
            return
        await respond(send, b"done")
        closed.wait(WAIT)  # blocks the loop thread on purpose: see above
        raise RuntimeError("the e-mail could not be sent")

    adapter = ASGIToWSGI(app, mode="shared")
    try:
        result = run_wsgi(adapter)
        closed.set()
        assert result.body == b"done"
        assert result.error is None
        assert wait_until(lambda: bool(_crossgate_errors(caplog)))
        [record] = _crossgate_errors(caplog)
        assert record.getMessage() == "the ASGI app failed after its response was complete"
    finally:
        adapter.shutdown()
