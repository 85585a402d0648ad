"""Each adapter refuses, at construction, an app of the wrong kind, and names the right wrapper.

The rule is the routers' (`crossgate.routing.is_asgi`); ``interface=`` overrides it for a
callable that fools it. Without the check, ``WSGIToASGI(asgi_app)`` and friends construct fine
and then answer every request with a 500 and a bare ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any, cast

import pytest
from asgiref.sync import markcoroutinefunction
from flask import Flask
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse

from crossgate import ASGIToWSGI, WSGIToASGI
from crossgate.routing import PathRouter, wsgi
from crossgate.testing import call_http, http_scope
from crossgate.types import ASGIReceive, ASGISend, Message, StartResponse, WSGIEnvironment
from tests.adapters.conftest import run
from tests.asgi_to_wsgi.conftest import run_wsgi


def wsgi_function(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi"]


async def asgi_function(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    await PlainTextResponse("asgi")(scope, receive, send)


def asgi_returning_a_coroutine(scope: Message, receive: ASGIReceive, send: ASGISend) -> Any:
    """ASGI, but a plain function that returns the coroutine: it looks like WSGI to the rule."""
    return asgi_function(scope, receive, send)


def wsgi_marked_async(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """WSGI, but marked as a coroutine function by mistake: it looks like ASGI to the rule."""
    return wsgi_function(environ, start_response)


markcoroutinefunction(wsgi_marked_async)


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(asgi_function, id="async-function"),
        pytest.param(Starlette(), id="starlette"),
        pytest.param(PlainTextResponse("x"), id="starlette-response"),
        pytest.param(WSGIToASGI(wsgi_function), id="wsgi-to-asgi-twice"),
    ],
)
def test_wsgi_to_asgi_refuses_an_asgi_app(app: Any) -> None:
    with pytest.raises(TypeError, match="is an ASGI application") as caught:
        WSGIToASGI(app)
    message = str(caught.value)
    assert "ASGIToWSGI" in message
    assert "interface='wsgi'" in message


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(wsgi_function, id="wsgi-function"),
        pytest.param(Flask(__name__), id="flask"),
        pytest.param(ASGIToWSGI(asgi_function), id="asgi-to-wsgi-twice"),
    ],
)
def test_asgi_to_wsgi_refuses_a_wsgi_app(app: Any) -> None:
    with pytest.raises(TypeError, match="is a WSGI application") as caught:
        ASGIToWSGI(app)
    message = str(caught.value)
    assert "WSGIToASGI" in message
    assert "interface='asgi'" in message


@pytest.mark.parametrize("adapter", [WSGIToASGI, ASGIToWSGI])
def test_none_is_refused(adapter: Any) -> None:
    with pytest.raises(TypeError, match=f"{adapter.__name__} takes an? .*, which is callable"):
        adapter(None)


@pytest.mark.parametrize("adapter", [WSGIToASGI, ASGIToWSGI])
def test_an_import_string_is_refused(adapter: Any) -> None:
    with pytest.raises(TypeError, match=r"not its name 'myproject\.wsgi:application'"):
        adapter("myproject.wsgi:application")


@pytest.mark.parametrize(
    ("adapter", "value"),
    [(WSGIToASGI, "asgi"), (ASGIToWSGI, "wsgi"), (WSGIToASGI, "asgi3")],
)
def test_interface_is_auto_or_the_adapters_own_kind(adapter: Any, value: str) -> None:
    with pytest.raises(ValueError, match="interface must be 'auto' or"):
        adapter(wsgi_function if adapter is WSGIToASGI else asgi_function, interface=value)


def test_interface_asgi_serves_an_asgi_app_that_fools_the_rule() -> None:
    with pytest.raises(TypeError, match="is a WSGI application"):
        ASGIToWSGI(asgi_returning_a_coroutine)

    adapter = ASGIToWSGI(asgi_returning_a_coroutine, interface="asgi", lifespan="off")
    try:
        result = run_wsgi(adapter)
    finally:
        adapter.shutdown()

    assert (result.code, result.body) == (200, b"asgi")


def test_interface_wsgi_serves_a_wsgi_app_that_fools_the_rule() -> None:
    with pytest.raises(TypeError, match="is an ASGI application"):
        WSGIToASGI(wsgi_marked_async)

    adapter = WSGIToASGI(wsgi_marked_async, interface="wsgi", workers=1)
    try:
        result = run(lambda: call_http(adapter, http_scope()))
    finally:
        adapter.close()

    assert (result.status, result.body) == (200, b"wsgi")


def test_the_routers_wsgi_marker_overrides_the_rule() -> None:
    # crossgate.routing.wsgi(app) says "this is WSGI": its adapter does not second-guess it.
    marked = wsgi(wsgi_marked_async, workers=1)
    router = PathRouter([], default=marked)
    try:
        result = run(lambda: call_http(router, http_scope()))
    finally:
        router.close()

    assert (result.status, result.body) == (200, b"wsgi")


def test_the_crossgate_marker_attribute_overrides_the_rule_too() -> None:
    class Marked:
        __crossgate_asgi__ = True

        def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> Awaitable[None]:
            return asgi_function(scope, receive, send)

    adapter = ASGIToWSGI(Marked(), lifespan="off")
    try:
        assert run_wsgi(adapter).body == b"asgi"
    finally:
        adapter.shutdown()


class _SentryLike:
    """sentry-sdk's SentryAsgiMiddleware keeps its async call in a ``__slots__`` entry."""

    __slots__ = ("__call__",)

    def __init__(self) -> None:
        self.__call__ = self._run_asgi3

    async def _run_asgi3(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await asgi_function(scope, receive, send)


def test_an_asgi_middleware_keeping_its_call_in_a_slot_is_asgi() -> None:
    adapter = ASGIToWSGI(_SentryLike(), lifespan="off")
    try:
        assert run_wsgi(adapter).body == b"asgi"
    finally:
        adapter.shutdown()
    with pytest.raises(TypeError, match="is an ASGI application"):
        WSGIToASGI(cast(Any, _SentryLike()))
