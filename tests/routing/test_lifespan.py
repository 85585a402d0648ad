"""Lifespan fan-out, the same for ``ProtocolRouter``, ``PathRouter`` and ``Fallback``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import crossgate._lifespan as lifespan_module
from crossgate.exceptions import AppProtocolError
from crossgate.routing import Fallback, Mount, PathRouter, ProtocolRouter
from crossgate.testing import call_http, call_lifespan, http_scope
from crossgate.types import ASGIReceive, ASGISend, Message, StartResponse, WSGIEnvironment
from tests.routing.conftest import Router, run

Events = list[str]


class LifespanApp:
    """An ASGI app with a lifespan that logs to ``events`` and answers HTTP with its state.

    It answers ``/refuse`` with a 404 (so a `Fallback` hands that path on).
    """

    def __init__(
        self,
        name: str,
        events: Events,
        *,
        fail_startup: str | None = None,
        fail_shutdown: str | None = None,
    ) -> None:
        self.name = name
        self.events = events
        self.fail_startup = fail_startup
        self.fail_shutdown = fail_shutdown
        self.request_states: list[dict[str, Any] | None] = []

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        self.request_states.append(scope.get("state"))
        body = f"{self.name} {sorted((scope.get('state') or {}).items())}".encode()
        status = 404 if scope["path"] == "/refuse" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def lifespan(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        if self.fail_startup is not None:
            self.events.append(f"{self.name} startup failed")
            await send({"type": "lifespan.startup.failed", "message": self.fail_startup})
            return
        scope["state"][self.name] = f"{self.name}-resource"
        self.events.append(f"{self.name} startup")
        await send({"type": "lifespan.startup.complete"})
        await receive()
        self.events.append(f"{self.name} shutdown")
        if self.fail_shutdown is not None:
            await send({"type": "lifespan.shutdown.failed", "message": self.fail_shutdown})
        else:
            await send({"type": "lifespan.shutdown.complete"})


async def django_like(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    """Django's ASGIHandler: raises for any scope but http, before receiving anything."""
    if scope["type"] != "http":
        raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"django"})


def wsgi_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi"]


RouterFactory = Callable[[list[Any]], Router]

# The three routers, each over a list of sub-apps, so that every lifespan rule is checked for
# each of them.
FACTORIES: dict[str, RouterFactory] = {
    "protocol": lambda apps: ProtocolRouter({f"type{n}": app for n, app in enumerate(apps)}),
    "path": lambda apps: PathRouter(
        [Mount(f"/m{n}", app) for n, app in enumerate(apps[:-1])], default=apps[-1]
    ),
    "fallback": lambda apps: Fallback(apps[0], apps[1]),
}


@pytest.fixture(params=sorted(FACTORIES))
def make_router(request: pytest.FixtureRequest, routers: list[Router]) -> RouterFactory:
    factory = FACTORIES[request.param]

    def make(apps: list[Any]) -> Router:
        router = factory(apps)
        routers.append(router)
        return router

    return make


def test_startup_in_order_shutdown_in_reverse(make_router: RouterFactory) -> None:
    events: Events = []
    router = make_router([LifespanApp("one", events), LifespanApp("two", events)])
    result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["one startup", "two startup", "two shutdown", "one shutdown"]


def test_a_failure_fails_startup_with_its_message_and_stops_the_started(
    make_router: RouterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    events: Events = []
    router = make_router(
        [LifespanApp("one", events), LifespanApp("two", events, fail_startup="no database")]
    )
    with caplog.at_level(logging.ERROR, logger="crossgate.routing"):
        result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.failed"]
    assert "no database" in result.messages[0]["message"]
    assert "LifespanApp" in result.messages[0]["message"]  # which sub-app it was
    assert events == ["one startup", "two startup failed", "one shutdown"]
    assert "no database" in caplog.text


def test_apps_that_reject_lifespan_are_skipped_quietly(
    make_router: RouterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    events: Events = []
    router = make_router([django_like, LifespanApp("one", events)])
    with caplog.at_level(logging.DEBUG, logger="crossgate"):
        result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["one startup", "one shutdown"]
    assert "does not support lifespan" in caplog.text
    assert all(record.levelno == logging.DEBUG for record in caplog.records), caplog.text


def test_wsgi_apps_take_part_and_their_pools_stop_at_shutdown(
    make_router: RouterFactory,
) -> None:
    # The WSGIToASGI around a WSGI app answers lifespan and closes its thread pool at
    # shutdown: the routers fixture's thread-leak check fails if a pool thread is left.
    events: Events = []
    router = make_router([wsgi_app, LifespanApp("one", events)])

    async def main() -> Any:
        startup = asyncio.Queue[Message]()
        startup.put_nowait({"type": "lifespan.startup"})
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        task = asyncio.create_task(router(scope, startup.get, send))
        while not sent:
            await asyncio.sleep(0)
        served = await call_http(router.apps[0], http_scope())  # starts the pool
        startup.put_nowait({"type": "lifespan.shutdown"})
        await task
        return served, sent

    served, sent = run(main)
    assert served.text == "wsgi"
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


class Probe:
    """An app that does nothing on lifespan but run ``behaviour``; answers HTTP with 200."""

    def __init__(self, behaviour: Callable[[ASGIReceive, ASGISend], Any]) -> None:
        self.behaviour = behaviour

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await self.behaviour(receive, send)


async def raise_after_receiving(receive: ASGIReceive, send: ASGISend) -> None:
    await receive()
    raise RuntimeError("startup crashed without saying so")


async def return_at_once(receive: ASGIReceive, send: ASGISend) -> None:
    return


async def answer_wrongly(receive: ASGIReceive, send: ASGISend) -> None:
    await receive()
    await send({"type": "lifespan.shutdown.complete"})


def test_an_app_raising_after_receiving_startup_is_skipped_at_info(
    make_router: RouterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # uvicorn's "auto" rule: raising is how an app says it has no lifespan (a bare Channels
    # consumer raises "No handler for message type lifespan.startup" after receiving it).
    events: Events = []
    router = make_router([Probe(raise_after_receiving), LifespanApp("one", events)])
    with caplog.at_level(logging.DEBUG):
        result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    said = [r for r in caplog.records if "startup crashed without saying so" in r.getMessage()]
    # One line, with the reason, no traceback; nothing at WARNING or above.
    assert [(r.levelno, r.exc_info) for r in said] == [(logging.INFO, None)]
    assert "does not support lifespan" in said[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert events == ["one startup", "one shutdown"]


def test_an_app_returning_without_an_answer_is_skipped(
    make_router: RouterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    router = make_router([Probe(return_at_once), LifespanApp("one", [])])
    with caplog.at_level(logging.DEBUG, logger="crossgate.routing"):
        result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert "returned without answering lifespan.startup" in caplog.text


def test_a_wrong_answer_is_no_lifespan_support(make_router: RouterFactory) -> None:
    # uvicorn's "auto" rule: only lifespan.startup.failed fails the startup.
    events: Events = []
    router = make_router([Probe(answer_wrongly), LifespanApp("one", events)])
    result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["one startup", "one shutdown"]


class _Dispatch(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        return await call_next(request)


async def answers_every_scope(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    # A raw app that never looks at the scope type.
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"raw"})


@pytest.mark.parametrize(
    "make_app",
    [
        pytest.param(lambda: JSONResponse({"a": 1}), id="starlette-response"),
        pytest.param(lambda: _Dispatch(JSONResponse({"a": 1})), id="base-http-middleware"),
        pytest.param(lambda: answers_every_scope, id="raw-function"),
    ],
)
def test_an_app_answering_lifespan_with_a_response_is_skipped(
    make_router: RouterFactory, caplog: pytest.LogCaptureFixture, make_app: Any
) -> None:
    events: Events = []
    other = make_app()
    router = make_router([other, LifespanApp("one", events)])
    with caplog.at_level(logging.DEBUG):
        result = run(lambda: call_lifespan(router))
        gc.collect()
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["one startup", "one shutdown"]
    said = [r for r in caplog.records if "does not support lifespan" in r.getMessage()]
    assert [(r.levelno, r.exc_info) for r in said] == [(logging.DEBUG, None)]
    assert "sent 'http.response.start' in answer to lifespan.startup" in said[0].getMessage()
    # No task left pending, no error of any kind.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    if not isinstance(router, ProtocolRouter):  # its sub-apps here serve made-up scope types
        # And the app is served.
        response = run(lambda: call_http(router, http_scope(path="/m0/")))
        assert response.status == 200


def test_a_sub_app_that_catches_the_refusal_and_waits_is_cancelled(
    make_router: RouterFactory,
) -> None:
    cancelled: list[bool] = []

    async def stubborn(receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        with contextlib.suppress(AppProtocolError):
            await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    events: Events = []
    router = make_router([Probe(stubborn), LifespanApp("one", events)])
    result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert cancelled == [True]
    assert events == ["one startup", "one shutdown"]


def test_shutdown_failures_are_reported_after_everything_stopped(
    make_router: RouterFactory,
) -> None:
    events: Events = []
    router = make_router(
        [LifespanApp("one", events), LifespanApp("two", events, fail_shutdown="disk full")]
    )
    result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    assert "disk full" in result.messages[1]["message"]
    assert events[-2:] == ["two shutdown", "one shutdown"]


@contextlib.asynccontextmanager
async def running(app: Any, state: dict[str, Any] | None) -> AsyncIterator[list[Message]]:
    """Run ``app``'s lifespan startup as a server would, yield, then shut it down.

    ``state`` is the server's lifespan namespace; ``None`` for a server without state support.
    Yields the lifespan messages the app sent.
    """
    events = asyncio.Queue[Message]()
    events.put_nowait({"type": "lifespan.startup"})
    sent: list[Message] = []
    answered = asyncio.Event()

    async def send(message: Message) -> None:
        sent.append(message)
        answered.set()

    scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}}
    if state is not None:
        scope["state"] = state
    task = asyncio.create_task(app(scope, events.get, send))
    await answered.wait()
    try:
        yield sent
    finally:
        events.put_nowait({"type": "lifespan.shutdown"})
        await task


def request(path: str, state: dict[str, Any] | None) -> dict[str, Any]:
    """A request scope as a server sends it: with a copy of the lifespan state, if any."""
    scope = http_scope("GET", path)
    del scope["state"]
    if state is not None:
        scope["state"] = dict(state)
    return scope


# For each router made by FACTORIES: the path of a request reaching its first and second app.
# (The Fallback's primary refuses /refuse, which then reaches the fallback.)
REACH = {
    ProtocolRouter: None,
    PathRouter: ("/m0/x", "/other"),
    Fallback: ("/", "/refuse"),
}


async def reach(router: Router, index: int, state: dict[str, Any] | None) -> None:
    if isinstance(router, ProtocolRouter):
        scope = request("/", state)
        scope["type"] = f"type{index}"
    else:
        paths = REACH[type(router)]
        assert paths is not None
        scope = request(paths[index], state)
    await call_http(router, scope)


@pytest.mark.parametrize("server_has_state", [True, False])
def test_each_app_has_its_own_state_and_its_requests_get_it(
    make_router: RouterFactory, server_has_state: bool
) -> None:
    one, two = LifespanApp("one", []), LifespanApp("two", [])
    router = make_router([one, two])
    server_state: dict[str, Any] | None = {"server": "s"} if server_has_state else None

    async def main() -> None:
        async with running(router, server_state):
            await reach(router, 0, server_state)
            await reach(router, 1, server_state)
            await reach(router, 0, server_state)

    run(main)
    seed = {"server": "s"} if server_has_state else {}
    assert one.request_states[0] == {**seed, "one": "one-resource"}
    assert two.request_states[-1] == {**seed, "two": "two-resource"}
    # The server's (the router's) namespace is not where the apps wrote ...
    assert server_state in ({"server": "s"}, None)
    # ... and each request got a copy: what one request writes, the next does not see.
    assert one.request_states[0] is not one.request_states[-1]


def test_apps_that_add_no_state_get_the_scope_as_it_came() -> None:
    # Nothing to add: no copy of the scope on the hot path.
    seen: list[Message] = []

    async def plain(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen.append(scope)

    router = ProtocolRouter({"http": plain})
    scope = request("/", {"server": 1})

    async def main() -> None:
        async with running(router, {"server": 1}):
            await router(scope, _never, _drop)

    run(main)
    assert seen == [scope]
    assert seen[0] is scope


async def _never() -> Message:  # pragma: no cover - the apps here never receive
    raise AssertionError("receive() was called")


async def _drop(message: Message) -> None:
    pass


def test_router_hooks_and_context_wrap_the_apps(make_router: RouterFactory) -> None:
    events: Events = []
    apps = [LifespanApp("one", events), LifespanApp("two", events)]
    router = make_router(apps)
    # The factories build plain routers; set the router-level parts on a fresh one of the
    # same kind, with the same apps.
    kind = type(router)

    @contextlib.asynccontextmanager
    async def context(owner: Any) -> AsyncIterator[dict[str, Any]]:
        assert owner is built
        events.append("context enter")
        yield {"shared": "from the router"}
        events.append("context exit")

    async def async_hook() -> None:
        events.append("async startup hook")

    hooks: dict[str, Any] = {
        "on_startup": [lambda: events.append("startup hook"), async_hook],
        "on_shutdown": [lambda: events.append("shutdown hook")],
        "lifespan": context,
    }
    if kind is ProtocolRouter:
        built: Any = ProtocolRouter({"type0": apps[0], "type1": apps[1]}, **hooks)
    elif kind is PathRouter:
        built = PathRouter([Mount("/m0", apps[0])], default=apps[1], **hooks)
    else:
        built = Fallback(apps[0], apps[1], **hooks)

    async def main() -> None:
        async with running(built, {}) as sent:
            assert sent == [{"type": "lifespan.startup.complete"}]
            await reach(built, 0, {"shared": "from the router"})

    run(main)
    assert events == [
        "context enter",
        "startup hook",
        "async startup hook",
        "one startup",
        "two startup",
        "two shutdown",
        "one shutdown",
        "shutdown hook",
        "context exit",
    ]
    # The router's own state seeds each app's namespace.
    assert apps[0].request_states[0] == {"shared": "from the router", "one": "one-resource"}


@pytest.mark.parametrize("where", ["hook", "context"])
def test_router_level_startup_failure(where: str, caplog: pytest.LogCaptureFixture) -> None:
    events: Events = []

    def broken() -> None:
        raise RuntimeError("hook broke")

    @contextlib.asynccontextmanager
    async def context(owner: Any) -> AsyncIterator[None]:
        raise RuntimeError("context broke")
        yield  # pragma: no cover - unreachable, makes this a generator

    options: dict[str, Any] = (
        {"on_startup": [broken], "on_shutdown": [lambda: events.append("shutdown hook")]}
        if where == "hook"
        else {"lifespan": context}
    )
    router = ProtocolRouter({"http": LifespanApp("one", events)}, **options)
    with caplog.at_level(logging.ERROR, logger="crossgate.routing"):
        result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.failed"]
    assert f"{where} broke" in result.messages[0]["message"]
    # Nothing had started, so nothing stops; the apps never started at all.
    assert events == []


def test_router_level_shutdown_failures_are_reported() -> None:
    events: Events = []

    def broken() -> None:
        raise RuntimeError("shutdown hook broke")

    @contextlib.asynccontextmanager
    async def context(owner: Any) -> AsyncIterator[None]:
        yield
        raise RuntimeError("context exit broke")

    router = ProtocolRouter(
        {"http": LifespanApp("one", events)},
        on_shutdown=[broken, lambda: events.append("second shutdown hook")],
        lifespan=context,
    )
    result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    # The first failure is reported; every hook still ran.
    assert "shutdown hook broke" in result.messages[1]["message"]
    assert events == ["one startup", "one shutdown", "second shutdown hook"]


def test_a_failing_app_stops_the_hooks_and_context_too() -> None:
    events: Events = []

    @contextlib.asynccontextmanager
    async def context(owner: Any) -> AsyncIterator[None]:
        events.append("context enter")
        yield
        events.append("context exit")

    router = ProtocolRouter(
        {"http": LifespanApp("bad", events, fail_startup="nope")},
        on_shutdown=[lambda: events.append("shutdown hook")],
        lifespan=context,
    )
    result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.failed"]
    assert events == ["context enter", "bad startup failed", "shutdown hook", "context exit"]


def test_nested_routers_fan_out_recursively() -> None:
    events: Events = []
    inner_app = LifespanApp("inner", events)
    inner = PathRouter([Mount("/v1", inner_app)], on_startup=[lambda: events.append("inner")])
    outer = ProtocolRouter({"http": PathRouter([Mount("/api", inner)])})

    async def main() -> Any:
        async with running(outer, {}):
            return await call_http(outer, request("/api/v1/x", {}))

    result = run(main)
    assert events == ["inner", "inner startup", "inner shutdown"]
    assert inner_app.request_states == [{"inner": "inner-resource"}]
    assert result.status == 200


def test_an_app_still_running_after_shutdown_is_cancelled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(lifespan_module, "EXIT_GRACE", 0.01)
    finished: list[str] = []

    async def lingering(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        try:
            await asyncio.Event().wait()
        finally:
            finished.append("cancelled")

    router = ProtocolRouter({"http": lingering})
    with caplog.at_level(logging.WARNING, logger="crossgate.routing"):
        result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert finished == ["cancelled"]
    assert "kept running after lifespan shutdown" in caplog.text


def test_an_app_that_returned_after_startup_has_nothing_to_shut_down() -> None:
    async def brief(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})

    result = run(lambda: call_lifespan(ProtocolRouter({"http": brief})))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_an_app_raising_or_returning_at_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    async def crash(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("shutdown crashed")

    async def quiet(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()

    async def odd(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.startup.complete"})

    router = PathRouter([Mount("/a", crash), Mount("/b", quiet)], default=odd)
    with caplog.at_level(logging.DEBUG, logger="crossgate.routing"):
        result = run(lambda: call_lifespan(router))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    # Shutdown runs in reverse: odd (default) first, and its answer is the one reported.
    assert (
        "answered lifespan.shutdown with 'lifespan.startup.complete'"
        in result.messages[1]["message"]
    )
    assert "shutdown crashed" in caplog.text
    assert "returned without answering lifespan.shutdown" in caplog.text


def test_an_app_answering_twice_gets_an_error_in_its_own_task() -> None:
    errors: list[BaseException] = []

    async def chatty(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        try:
            await send({"type": "lifespan.startup.complete"})
        except AppProtocolError as exc:
            errors.append(exc)
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    result = run(lambda: call_lifespan(ProtocolRouter({"http": chatty})))
    assert result.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert "no lifespan event was waiting" in str(errors[0])


def test_cancelling_the_routers_lifespan_cancels_the_apps() -> None:
    stopped: list[str] = []

    async def holder(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        try:
            await receive()
        finally:
            stopped.append("holder")

    async def main() -> None:
        router = ProtocolRouter({"http": holder})
        events = asyncio.Queue[Message]()
        events.put_nowait({"type": "lifespan.startup"})
        started = asyncio.Event()

        async def send(message: Message) -> None:
            started.set()

        task = asyncio.create_task(router({"type": "lifespan", "state": {}}, events.get, send))
        await started.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    run(main)  # run() fails if any task is left pending
    assert stopped == ["holder"]


def test_starlette_apps_keep_their_own_state(routers: list[Router]) -> None:
    def starlette_app(name: str, log: Events) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
            log.append(f"{name} up")
            yield {"db": f"{name}-db"}
            log.append(f"{name} down")

        async def home(request: Request) -> PlainTextResponse:
            return PlainTextResponse(request.state.db)

        return Starlette(routes=[Route("/", home)], lifespan=lifespan)

    log: Events = []
    router = PathRouter(
        [Mount("/admin", starlette_app("admin", log))], default=starlette_app("site", log)
    )

    async def main() -> tuple[str, str]:
        async with running(router, {}):
            admin = await call_http(router, request("/admin/", {}))
            site = await call_http(router, request("/", {}))
            return admin.text, site.text

    assert run(main) == ("admin-db", "site-db")
    assert log == ["admin up", "site up", "site down", "admin down"]
