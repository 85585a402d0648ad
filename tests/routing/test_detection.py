"""Which apps the routers treat as ASGI and which they wrap in ``WSGIToASGI``, and overrides."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any
from wsgiref.validate import validator

import django.core.handlers.wsgi
import flask
import pytest
import starlette.applications
from asgiref.sync import markcoroutinefunction

from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.routing import ProtocolRouter, asgi, is_asgi, wsgi
from crossgate.testing import call_http
from crossgate.types import ASGIReceive, ASGISend, Message, StartResponse, WSGIEnvironment
from tests.routing.conftest import Recorder, Router, run


async def async_function(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    await Recorder("async function")(scope, receive, send)


def wsgi_function(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi function"]


class AsyncCallable:
    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await Recorder("async callable")(scope, receive, send)


class SyncCallable:
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return wsgi_function(environ, start_response)


class WSGIClass:
    """PEP 3333 allows a class as the application: calling it makes the response iterable."""

    def __init__(self, environ: WSGIEnvironment, start_response: StartResponse) -> None:
        start_response("200 OK", [("Content-Type", "text/plain")])

    def __iter__(self) -> Any:
        yield b"wsgi class"


class MarkedWSGI(AsyncCallable):
    __crossgate_asgi__ = False


def asgi_by_hand(scope: Message, receive: ASGIReceive, send: ASGISend) -> Any:
    """An ASGI app written as a plain function returning a coroutine: detection misses it."""
    return async_function(scope, receive, send)


class MarkedASGI:
    __crossgate_asgi__ = True

    def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> Any:
        return async_function(scope, receive, send)


class SlotCall:
    """sentry-sdk's SentryAsgiMiddleware: ``__call__`` is a ``__slots__`` entry, holding the
    async method chosen in ``__init__`` (its ASGI 3 path)."""

    __slots__ = ("__call__",)

    def __init__(self, asgi3: bool = True) -> None:
        self.__call__ = self._run_asgi3 if asgi3 else self._run_sync

    async def _run_asgi3(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await async_function(scope, receive, send)

    def _run_sync(self, environ: Any, start_response: Any) -> Any:
        return wsgi_function(environ, start_response)


class EmptySlotCall:
    __slots__ = ("__call__",)


class PartialCall:
    """A ``__call__`` that does not bind: used as it is.

    A bare partial as a class attribute binds on nothing up to 3.13, which warns that it will
    become a method descriptor (FutureWarning); `staticmethod` says "do not bind" on every
    version.
    """

    __call__ = staticmethod(functools.partial(async_function))


def marked_function() -> Any:
    def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> Any:
        return async_function(scope, receive, send)

    return markcoroutinefunction(app)


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        pytest.param(async_function, True, id="coroutine-function"),
        pytest.param(functools.partial(async_function), True, id="partial-of-coroutine"),
        pytest.param(marked_function(), True, id="markcoroutinefunction"),
        pytest.param(AsyncCallable(), True, id="instance-with-async-call"),
        pytest.param(starlette.applications.Starlette(), True, id="starlette"),
        pytest.param(WSGIToASGI(wsgi_function), True, id="crossgate-adapter"),
        pytest.param(ProtocolRouter({}), True, id="crossgate-router"),
        pytest.param(MarkedASGI(), True, id="marker-true"),
        pytest.param(SlotCall(), True, id="async-call-in-a-slot-sentry"),
        pytest.param(SlotCall(asgi3=False), False, id="sync-call-in-a-slot"),
        pytest.param(EmptySlotCall(), False, id="empty-call-slot"),
        pytest.param(PartialCall(), True, id="partial-as-the-class-call"),
        pytest.param(wsgi_function, False, id="wsgi-function"),
        pytest.param(SyncCallable(), False, id="instance-with-sync-call"),
        pytest.param(WSGIClass, False, id="wsgi-class"),
        pytest.param(AsyncCallable, False, id="class-with-async-call-is-not-an-app"),
        pytest.param(MarkedWSGI(), False, id="marker-false-wins"),
        pytest.param(flask.Flask(__name__), False, id="flask"),
        pytest.param(django.core.handlers.wsgi.WSGIHandler, False, id="django-wsgi-class"),
        pytest.param(validator(wsgi_function), False, id="wsgiref-validator"),
        pytest.param(asgi_by_hand, False, id="asgi-returning-coroutine-needs-the-marker"),
    ],
)
def test_detection_rule(app: object, expected: bool) -> None:
    assert is_asgi(app) is expected


def routed_text(app: Any, routers: list[Router]) -> str:
    router = ProtocolRouter({"http": app})
    routers.append(router)
    return run(lambda: call_http(router)).text


@pytest.mark.parametrize(
    ("app", "text", "wrapped"),
    [
        (async_function, "async function", False),
        (AsyncCallable(), "async callable", False),
        (validator(wsgi_function), "wsgi function", True),
        (validator(WSGIClass), "wsgi class", True),
        (asgi(asgi_by_hand), "async function", False),
        (MarkedASGI(), "async function", False),
        (SlotCall(), "async function", False),
    ],
)
def test_router_serves_each_kind(app: Any, text: str, wrapped: bool, routers: list[Router]) -> None:
    assert routed_text(app, routers) == text
    router = routers[-1]
    assert isinstance(router.apps[0], WSGIToASGI) is wrapped


def test_asgi_marker_is_unwrapped_by_routers() -> None:
    marked = asgi(asgi_by_hand)
    router = ProtocolRouter({"http": marked})
    # The router calls the app itself: no extra layer per request.
    assert router.apps == (asgi_by_hand,)
    assert is_asgi(marked)
    assert "asgi_by_hand" in repr(marked)


def test_asgi_marker_is_itself_an_asgi_app() -> None:
    result = run(lambda: call_http(asgi(asgi_by_hand)))
    assert result.text == "async function"


def test_wsgi_marker_takes_its_own_options(routers: list[Router]) -> None:
    adapter = wsgi(validator(SyncCallable()), max_body_size=3)
    router = ProtocolRouter({"http": adapter}, wsgi_options={"max_body_size": 1000})
    routers.append(router)
    assert router.apps == (adapter,)
    assert run(lambda: call_http(router, body=b"ok")).status == 200  # its pool now runs
    result = run(lambda: call_http(router, body=b"four"))
    assert result.status == 413  # the marker's limit (3), not the router's (1000)
    # No adapter.close() here: router.close() (the fixture) stops the marker's pool too, and
    # the thread-leak check fails the test if it did not.


def test_router_wsgi_options_reach_the_adapter(routers: list[Router]) -> None:
    router = ProtocolRouter({"http": validator(wsgi_function)}, wsgi_options={"max_body_size": 3})
    routers.append(router)
    assert run(lambda: call_http(router, body=b"four")).status == 413


def test_bad_wsgi_options_fail_when_the_router_is_built() -> None:
    with pytest.raises(ValueError, match="workers"):
        ProtocolRouter({"http": wsgi_function}, wsgi_options={"workers": 0})


@pytest.mark.parametrize("maker", [asgi, wsgi])
def test_markers_refuse_what_is_not_callable(maker: Any) -> None:
    with pytest.raises(TypeError, match="callable"):
        maker("not an app")


def test_router_refuses_what_is_not_callable() -> None:
    with pytest.raises(TypeError, match=r"\['http'\].*callable"):
        ProtocolRouter({"http": 42})  # type: ignore[dict-item]  # the point of the test
