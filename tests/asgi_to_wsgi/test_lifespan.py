"""ASGIToWSGI and the ASGI lifespan protocol: once per process, on the requests' loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
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
    assert any("did not complete within" in r.getMessage() for r in caplog.records)


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
        ("raises", "the app's lifespan failed at shutdown"),
        ("silent", "lifespan shutdown did not complete within"),
        ("wrong answer", "unexpected lifespan message 'lifespan.startup.complete' at shutdown"),
        # The lifespan coroutine died while the app served: said at shutdown.
        ("ends with an error", "the app's lifespan ended with an error"),
    ],
)
def test_shutdown_troubles_are_logged(
    make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture, shutdown: str, logged: str
) -> None:
    adapter = make_adapter(_scripted([COMPLETE], shutdown), lifespan_timeout=0.05)
    assert run_wsgi(adapter).body == b"ok"

    adapter.shutdown()

    assert any(logged in r.getMessage() for r in caplog.records), caplog.text


def test_an_unexpected_startup_answer_is_a_failure(make_adapter: MakeAdapter) -> None:
    app = _scripted([{"type": "lifespan.shutdown.complete"}], "raises")

    result = run_wsgi(make_adapter(app))

    assert result.code == 500
