"""ASGIToWSGI and the ASGI lifespan protocol: once per process, on the requests' loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crossgate.adapters import asgi_to_wsgi as asgi_to_wsgi_module
from crossgate.exceptions import CrossgateError
from crossgate.types import ASGIReceive, ASGISend, Message
from tests.asgi_to_wsgi._apps import respond
from tests.asgi_to_wsgi.conftest import MakeAdapter, run_wsgi


class LifespanApp:
    """Records the lifespan messages it gets; its requests answer with what they see."""

    def __init__(self, *, startup: str = "complete", shutdown: str = "complete") -> None:
        self.startup = startup
        self.shutdown = shutdown
        self.events: list[str] = []
        self.loops: dict[str, tuple[int, str]] = {}

    def _where(self, what: str) -> None:
        self.loops[what] = (id(asyncio.get_running_loop()), threading.current_thread().name)

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        self._where("request")
        seen = dict(scope["state"])
        scope["state"]["mutated by a request"] = True
        body = json.dumps({key: repr(value) for key, value in seen.items()}).encode()
        await respond(send, body)

    async def _lifespan(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        while True:
            message = await receive()
            self.events.append(message["type"])
            if message["type"] == "lifespan.startup":
                self._where("startup")
                if self.startup == "silent":
                    await asyncio.sleep(3600)
                scope["state"]["pool"] = "connections"
                scope["state"]["startups"] = self.events.count("lifespan.startup")
                if self.startup == "failed":
                    await send({"type": "lifespan.startup.failed", "message": "database down"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.shutdown == "failed":
                    await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return


def _state(make_adapter: MakeAdapter, app: Any, **options: Any) -> tuple[Any, list[Any]]:
    adapter = make_adapter(app, **options)
    results = [run_wsgi(adapter) for _ in range(3)]
    return adapter, results


def test_startup_runs_once_before_the_first_request_with_state_in_every_request(
    make_adapter: MakeAdapter,
) -> None:
    app = LifespanApp()

    adapter, results = _state(make_adapter, app)

    assert app.events == ["lifespan.startup"]
    # Each request gets a shallow copy: what one request adds is not seen by the next.
    for result in results:
        assert json.loads(result.body) == {"pool": "'connections'", "startups": "1"}
    adapter.shutdown()
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


def test_lifespan_runs_on_the_loop_requests_run_on(make_adapter: MakeAdapter) -> None:
    app = LifespanApp()

    _state(make_adapter, app)

    # What startup sets up (a pool bound to its loop) must be usable from every request.
    assert app.loops["startup"] == app.loops["request"]


def test_startup_can_run_eagerly_and_only_once(make_adapter: MakeAdapter) -> None:
    app = LifespanApp()
    adapter = make_adapter(app)

    adapter.startup()
    assert app.events == ["lifespan.startup"]
    adapter.startup()
    run_wsgi(adapter)

    assert app.events == ["lifespan.startup"]


def test_the_exit_hook_shuts_every_adapter_down(make_adapter: MakeAdapter) -> None:
    apps = [LifespanApp(), LifespanApp()]
    for app in apps:
        run_wsgi(make_adapter(app))

    asgi_to_wsgi_module._shutdown_all()  # what atexit runs

    assert [app.events for app in apps] == [["lifespan.startup", "lifespan.shutdown"]] * 2


def test_failed_startup_makes_every_request_a_logged_500(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    app = LifespanApp(startup="failed")

    adapter, results = _state(make_adapter, app)

    assert [r.code for r in results] == [500, 500, 500]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert sum("database down" in message for message in errors) == 4  # once, then per request
    with pytest.raises(CrossgateError, match="database down"):
        adapter.startup()
    # Shutdown is not sent after a failed startup (ASGI lifespan spec).
    adapter.shutdown()
    assert app.events == ["lifespan.startup"]


def test_startup_that_never_answers_times_out(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    app = LifespanApp(startup="silent")

    _, results = _state(make_adapter, app, lifespan_timeout=0.05)

    assert [r.code for r in results] == [500, 500, 500]
    assert any("did not complete lifespan.startup within" in r.getMessage() for r in caplog.records)


def test_failed_shutdown_is_logged(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    adapter, _ = _state(make_adapter, LifespanApp(shutdown="failed"))

    adapter.shutdown()

    assert any(
        "flush failed" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    )


async def _django_like(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    # Django's ASGIHandler: "Django can only handle ASGI/HTTP connections, not lifespan."
    if scope["type"] != "http":
        raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
    await respond(send, b"django")


def test_an_app_without_lifespan_is_served_quietly(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="crossgate"):
        _, results = _state(make_adapter, _django_like)

    assert [r.body for r in results] == [b"django"] * 3
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]
    assert any("does not support lifespan" in r.getMessage() for r in caplog.records)


def test_lifespan_on_makes_an_unsupported_lifespan_a_failure(make_adapter: MakeAdapter) -> None:
    _, results = _state(make_adapter, _django_like, lifespan="on")

    assert [r.code for r in results] == [500, 500, 500]


def test_lifespan_off_never_sends_lifespan(make_adapter: MakeAdapter) -> None:
    app = LifespanApp()

    _, results = _state(make_adapter, app, lifespan="off")

    assert app.events == []
    assert [json.loads(r.body) for r in results] == [{}] * 3


def test_starlette_lifespan_state_reaches_requests(make_adapter: MakeAdapter) -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"pool": "the pool"}
        events.append("shutdown")

    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"pool": request.state.pool})

    adapter = make_adapter(Starlette(routes=[Route("/", endpoint)], lifespan=lifespan))
    result = run_wsgi(adapter)
    adapter.shutdown()

    assert json.loads(result.body) == {"pool": "the pool"}
    assert events == ["startup", "shutdown"]


def _scripted(startup: list[Message], shutdown: str) -> Any:
    """A lifespan that answers startup with ``startup`` and behaves as ``shutdown`` says."""

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http":
            await respond(send, b"ok")
            return
        await receive()
        for message in startup:
            await send(message)
        if shutdown == "ends with an error":
            raise RuntimeError("the pool's watchdog died")
        await receive()
        if shutdown == "raises":
            raise RuntimeError("flush failed hard")
        if shutdown == "silent":
            await asyncio.sleep(3600)
        await send({"type": "lifespan.startup.complete"})  # the wrong answer

    return app


COMPLETE: Message = {"type": "lifespan.startup.complete"}


@pytest.mark.parametrize(
    ("shutdown", "logged"),
    [
        ("raises", "the app raised during shutdown: RuntimeError('flush failed hard')"),
        ("silent", "the app did not complete lifespan.shutdown within"),
        ("wrong answer", "the app answered lifespan.shutdown with 'lifespan.startup.complete'"),
        # The lifespan coroutine died while the app served: said at shutdown.
        ("ends with an error", "the lifespan of the app ended early"),
    ],
)
def test_shutdown_troubles_are_logged(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture, shutdown: str, logged: str
) -> None:
    adapter = make_adapter(_scripted([COMPLETE], shutdown), lifespan_timeout=0.05)
    assert run_wsgi(adapter).body == b"ok"

    adapter.shutdown()

    assert any(logged in r.getMessage() for r in caplog.records), caplog.text


def test_an_unexpected_startup_answer_is_no_lifespan_support(make_adapter: MakeAdapter) -> None:
    # uvicorn's "auto": only lifespan.startup.failed fails startup.
    app = _scripted([{"type": "lifespan.shutdown.complete"}], "raises")

    result = run_wsgi(make_adapter(app))

    assert (result.code, result.body) == (200, b"ok")


def test_an_unexpected_startup_answer_fails_startup_with_lifespan_on(
    make_adapter: MakeAdapter,
) -> None:
    app = _scripted([{"type": "lifespan.shutdown.complete"}], "raises")

    result = run_wsgi(make_adapter(app, lifespan="on"))

    assert result.code == 500


# --- apps that answer the lifespan scope with something else (uvicorn's "auto" rule) ----------


async def _answers_every_scope(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    # A raw app that never looks at the scope type.
    await respond(send, b"raw")


class _ConsumerLike:
    """A bare Channels consumer: it takes the event, finds no handler and raises."""

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http":
            await respond(send, b"consumer")
            return
        message = await receive()
        raise ValueError(f"No handler for message type {message['type']}")


class _Dispatch(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-dispatched"] = "yes"
        return response


NO_LIFESPAN = [
    pytest.param(
        lambda: JSONResponse({"a": 1}),
        b'{"a":1}',
        "sent 'http.response.start' in answer to lifespan.startup",
        logging.DEBUG,
        id="starlette-response",
    ),
    pytest.param(
        lambda: _Dispatch(JSONResponse({"a": 1})),
        b'{"a":1}',
        "sent 'http.response.start' in answer to lifespan.startup",
        logging.DEBUG,
        id="base-http-middleware",
    ),
    pytest.param(
        lambda: _answers_every_scope,
        b"raw",
        "sent 'http.response.start' in answer to lifespan.startup",
        logging.DEBUG,
        id="raw-function",
    ),
    pytest.param(
        _ConsumerLike,
        b"consumer",
        "raised ValueError('No handler for message type lifespan.startup')",
        logging.INFO,
        id="consumer-raises-after-receive",
    ),
]


@pytest.mark.parametrize(("make_app", "body", "reason", "level"), NO_LIFESPAN)
def test_an_app_that_answers_lifespan_otherwise_is_served_without_it(
    make_adapter: MakeAdapter,
    caplog: pytest.LogCaptureFixture,
    make_app: Any,
    body: bytes,
    reason: str,
    level: int,
) -> None:
    with caplog.at_level(logging.DEBUG):
        adapter = make_adapter(make_app())
        results = [run_wsgi(adapter) for _ in range(3)]
        process = adapter._process
        assert process is not None
        assert process.lifespan is not None
        task = process.lifespan.task
        # Nothing of the lifespan is left running behind the first request.
        assert task is not None
        assert task.done()
        adapter.shutdown()
        del task, process
        gc.collect()

    assert [(r.code, r.body) for r in results] == [(200, body)] * 3
    said = [r for r in caplog.records if "does not support lifespan" in r.getMessage()]
    # Once, with the reason, and no traceback: not an error.
    assert [(r.levelno, r.exc_info) for r in said] == [(level, None)]
    assert reason in said[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize(("make_app", "body", "reason", "level"), NO_LIFESPAN)
def test_lifespan_on_refuses_an_app_that_answers_lifespan_otherwise(
    make_adapter: MakeAdapter,
    caplog: pytest.LogCaptureFixture,
    make_app: Any,
    body: bytes,
    reason: str,
    level: int,
) -> None:
    adapter = make_adapter(make_app(), lifespan="on")

    result = run_wsgi(adapter)

    assert result.code == 500
    assert any(reason in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_an_app_that_catches_the_refusal_and_waits_is_cancelled(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    cancelled = threading.Event()

    async def stubborn(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http":
            await respond(send, b"ok")
            return
        with contextlib.suppress(CrossgateError):
            await respond(send, b"not a lifespan answer")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    adapter = make_adapter(stubborn)
    result = run_wsgi(adapter)

    assert (result.code, result.body) == (200, b"ok")
    assert cancelled.is_set()


def test_an_app_that_swallows_the_refusal_and_returns_is_waited_for(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    ended = threading.Event()

    async def polite(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http":
            await respond(send, b"ok")
            return
        with contextlib.suppress(CrossgateError):
            await respond(send, b"not a lifespan answer")
        await asyncio.sleep(0.01)  # some clean-up of its own, then it ends
        ended.set()

    adapter = make_adapter(polite)
    result = run_wsgi(adapter)

    assert (result.code, result.body) == (200, b"ok")
    assert ended.is_set()


@pytest.mark.parametrize("when", ["at shutdown", "while serving"])
def test_an_app_returning_without_answering_later_is_no_error(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture, when: str
) -> None:
    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http":
            await respond(send, b"ok")
            return
        await receive()
        await send({"type": "lifespan.startup.complete"})
        if when == "at shutdown":
            await receive()
        # and returns, without answering lifespan.shutdown

    adapter = make_adapter(app)
    assert run_wsgi(adapter).body == b"ok"
    adapter.shutdown()

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
