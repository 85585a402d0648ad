"""The app's exceptions reach the code around ASGIToWSGI (issue 14, item 3), with the real
packages users put there: Sentry's WSGI middleware, werkzeug's debugger, Flask's
``PROPAGATE_EXCEPTIONS`` through a round trip, and Sentry's ASGI middleware around WSGIToASGI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

import pytest
from flask import Flask
from sentry_sdk.integrations.asgi import SentryAsgiMiddleware
from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware
from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.debug import DebuggedApplication
from werkzeug.test import Client

from crossgate import ASGIToWSGI, WSGIToASGI
from crossgate.testing import call_http, http_scope
from crossgate.types import ASGIReceive, ASGISend, Message, StartResponse, WSGIEnvironment
from tests.asgi_to_wsgi.conftest import MakeAdapter, run_wsgi, thread_leak_check
from tests.sentry_memory import SentryEvents, sentry_events

__all__ = ["sentry_events", "thread_leak_check"]


class Boom(Exception):
    pass


async def failing_asgi(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    if scope["type"] != "http":
        return
    raise Boom("the ASGI app failed")


def _starlette(debug: bool) -> Starlette:
    async def fail(request: Request) -> PlainTextResponse:
        raise Boom("from a Starlette endpoint")

    async def fine(request: Request) -> PlainTextResponse:
        return PlainTextResponse("fine")

    return Starlette(debug=debug, routes=[Route("/fail", fail), Route("/", fine)])


def test_sentry_wsgi_middleware_sees_the_asgi_apps_exception(
    make_adapter: MakeAdapter, sentry_events: SentryEvents
) -> None:
    app = SentryWsgiMiddleware(make_adapter(failing_asgi))

    result = run_wsgi(app, path="/orders/7", catch_call=True, validate=False)

    assert isinstance(result.call_error, Boom)
    assert sentry_events.exception_types() == ["Boom"]
    [event] = sentry_events.events
    assert event["request"]["url"].endswith("/orders/7")


@pytest.mark.parametrize("mode", ["inline", "shared"])
def test_sentry_wsgi_middleware_sees_what_starlette_raises_after_its_500(
    thread_leak_check: None, sentry_events: SentryEvents, mode: str
) -> None:
    # Starlette's ServerErrorMiddleware answers 500, then re-raises, in one step: the app has
    # ended before the server got anything. The server still gets Starlette's whole page, and
    # close() raises (wsgi_raise_point), where Sentry's middleware sees it.
    adapter = ASGIToWSGI(_starlette(debug=True), mode=mode, lifespan="off")  # type: ignore[arg-type]
    app = SentryWsgiMiddleware(adapter)
    try:
        result = run_wsgi(app, path="/fail", validate=False, catch_call=True)
        assert result.call_error is None
        assert result.status == "500 Internal Server Error"
        # Starlette's own debug page, not a server's generic 500.
        assert b"from a Starlette endpoint" in result.body
        assert isinstance(result.error, Boom)
        assert sentry_events.exception_types() == ["Boom"]
        assert run_wsgi(app, path="/", validate=False).body == b"fine"
        assert sentry_events.exception_types() == ["Boom"]
    finally:
        adapter.shutdown()


def test_werkzeug_debugger_shows_the_asgi_apps_exception(make_adapter: MakeAdapter) -> None:
    client = Client(DebuggedApplication(make_adapter(failing_asgi), evalex=False))

    response = client.get("/")

    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "Boom" in page
    assert "the ASGI app failed" in page
    assert "failing_asgi" in page  # the traceback reaches into the app's own frame


def test_flask_propagate_exceptions_through_a_round_trip(thread_leak_check: None) -> None:
    # ASGIToWSGI(WSGIToASGI(app.wsgi_app)): Flask raises (PROPAGATE_EXCEPTIONS, the
    # testing default), WSGIToASGI answers 500 and raises, ASGIToWSGI raises it on from the
    # response's close() (a complete response: wsgi_raise_point). werkzeug's test client
    # hands the response over unclosed, so the very exception comes from response.close()
    # rather than from client.get() as without crossgate (conformance: the
    # "raised-from-close" group).
    app = Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    error = Boom("from a Flask view")

    @app.route("/fail")
    def fail() -> str:
        raise error

    @app.route("/")
    def fine() -> str:
        return "fine"

    inner = WSGIToASGI(app.wsgi_app)
    # No mode given: "auto" picks inline under werkzeug's test client (one thread).
    outer = ASGIToWSGI(inner, lifespan="off")
    app.wsgi_app = outer  # type: ignore[method-assign]
    try:
        client = app.test_client()
        response = client.get("/fail")
        assert response.status_code == 500
        with pytest.raises(Boom) as raised:
            response.close()
        assert raised.value is error
        assert client.get("/").text == "fine"
    finally:
        outer.shutdown()
        inner.close()


def test_flask_without_propagation_gets_its_own_500_page(make_adapter: MakeAdapter) -> None:
    app = Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.route("/fail")
    def fail() -> str:
        raise Boom("handled by Flask")

    inner = WSGIToASGI(app.wsgi_app)
    app.wsgi_app = make_adapter(inner, lifespan="off")  # type: ignore[method-assign]
    try:
        response = app.test_client().get("/fail")
        assert response.status_code == 500
        assert "Internal Server Error" in response.text
    finally:
        inner.close()


@pytest.mark.parametrize("where", ["before", "after"])
def test_sentry_asgi_middleware_sees_the_wsgi_apps_exception(
    sentry_events: SentryEvents, where: str
) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        if where == "before":
            raise Boom("the WSGI app failed")
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        raise Boom("the WSGI app failed")

    adapter = WSGIToASGI(app, send_buffer=1)
    wrapped = SentryAsgiMiddleware(adapter)
    try:
        result = asyncio.run(call_http(wrapped, http_scope("GET", "/orders/7")))
    finally:
        adapter.close()

    assert isinstance(result.error, Boom)
    if where == "before":
        assert result.status == 500
        assert result.complete
    else:
        assert result.status == 200
        assert not result.complete
    assert sentry_events.exception_types() == ["Boom"]
    [event] = sentry_events.events
    assert event["request"]["url"].endswith("/orders/7")


def test_sentry_asgi_middleware_sees_a_str_chunk(sentry_events: SentryEvents) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[str]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter(["text"])

    adapter = WSGIToASGI(app)  # type: ignore[arg-type]  # a str body, on purpose
    try:
        result = asyncio.run(call_http(SentryAsgiMiddleware(adapter)))
    finally:
        adapter.close()

    assert result.status == 500
    assert sentry_events.exception_types() == ["AppProtocolError"]


def test_starlette_server_error_middleware_sees_the_wsgi_apps_exception() -> None:
    # It sees the exception and raises it on (to Sentry, the server); its debug page cannot
    # replace the 500 that already went out.
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise Boom("seen by Starlette")

    adapter = WSGIToASGI(app)
    try:
        result = asyncio.run(call_http(ServerErrorMiddleware(adapter, debug=True)))
    finally:
        adapter.close()

    assert result.status == 500
    assert isinstance(result.error, Boom)


@pytest.mark.parametrize("mode", ["inline", "shared"])
@pytest.mark.parametrize("raise_server_exceptions", [False, True])
def test_starlettes_error_page_and_exception_survive_a_round_trip(
    thread_leak_check: None, mode: str, raise_server_exceptions: bool
) -> None:
    # WSGIToASGI(ASGIToWSGI(app)) under Starlette's TestClient: ServerErrorMiddleware's debug
    # page reaches the client whole (ASGIToWSGI raises from close(), WSGIToASGI sends the
    # complete response first), and the exception still reaches the TestClient.
    inner = ASGIToWSGI(_starlette(debug=True), mode=mode, lifespan="off")  # type: ignore[arg-type]
    outer = WSGIToASGI(inner)
    try:
        client = TestClient(outer, raise_server_exceptions=raise_server_exceptions)
        if raise_server_exceptions:
            with pytest.raises(Boom, match="from a Starlette endpoint"):
                client.get("/fail")
        else:
            response = client.get("/fail")
            assert response.status_code == 500
            assert "from a Starlette endpoint" in response.text
            assert "Traceback" in response.text
        assert client.get("/").text == "fine"
    finally:
        inner.shutdown()
        outer.close()
