"""What the routers share: sub-apps, ASGI or WSGI, the lifespan fan-out (ASGI lifespan 2.0)."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from crossgate._lifespan import Hook, LifespanDriver, Step, answer_lifespan, run_hooks
from crossgate.adapters._interface import describe, is_asgi
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.types import ASGIApp, ASGIReceive, ASGISend, Message, WSGIApplication

__all__ = ["App", "Hook", "Lifespan", "Router", "asgi", "call", "downstream", "wsgi"]

_log = logging.getLogger("crossgate.routing")

App = Callable[..., Any]
"""An ASGI 3 application or a PEP 3333 WSGI application; `is_asgi` tells which."""

Lifespan = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]
"""A ``lifespan=`` factory: called with the router, it returns an async context manager that may
yield a mapping to add to the router's state (the Starlette convention)."""


class _ExplicitASGI:
    __crossgate_asgi__ = True

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await self.app(scope, receive, send)

    def __repr__(self) -> str:
        return f"asgi({self.app!r})"


def asgi(app: App) -> ASGIApp:
    """Mark ``app`` as ASGI for the routers, whatever `is_asgi` would say (routers unwrap it).

    Raises:
        TypeError: ``app`` is not callable.
    """
    if not callable(app):
        raise TypeError(f"an ASGI app is callable; got {type(app).__name__}")
    return _ExplicitASGI(app)


def wsgi(app: WSGIApplication, **options: Any) -> WSGIToASGI:
    """Mark ``app`` as WSGI, with its own `WSGIToASGI` options; returns that adapter.

    Raises:
        TypeError: ``app`` is not callable, or an option is unknown.
        ValueError: an option is out of range.
    """
    if not callable(app):
        raise TypeError(f"a WSGI app is callable; got {type(app).__name__}")
    return WSGIToASGI(app, **{"interface": "wsgi", **options})


@dataclass(slots=True, eq=False)
class Child:
    """A sub-app; ``state`` is its lifespan namespace, ``None`` when the server's copy will do."""

    app: App
    name: str
    state: dict[str, Any] | None = None


# The `WSGIToASGI` made for each WSGI app (by id) and its options: routers share it and its pool.
_SHARED: weakref.WeakValueDictionary[int, WSGIToASGI] = weakref.WeakValueDictionary()
_SHARED_OPTIONS: weakref.WeakKeyDictionary[WSGIToASGI, dict[str, Any]] = weakref.WeakKeyDictionary()


class Router:
    def __init__(
        self,
        wsgi_options: Mapping[str, Any] | None,
        on_startup: Sequence[Hook],
        on_shutdown: Sequence[Hook],
        lifespan: Lifespan | None,
    ) -> None:
        self.wsgi_options: dict[str, Any] = dict(wsgi_options or {})
        self._children: list[Child] = []
        # id(app) -> (app, child): an app given twice is one sub-app; holding it keeps the id.
        self._known: dict[int, tuple[object, Child]] = {}
        self._on_startup = list(on_startup)
        self._on_shutdown = list(on_shutdown)
        self._lifespan = lifespan

    def _child(self, app: App, label: str) -> Child:
        if not callable(app):
            raise TypeError(f"{label}: an app is callable; got {type(app).__name__}")
        known = self._known.get(id(app))
        if known is not None:
            return known[1]
        if isinstance(app, _ExplicitASGI):
            child = Child(app.app, f"{label} ({describe(app.app)})")
        elif is_asgi(app):
            child = Child(app, f"{label} ({describe(app)})")
        else:
            adapter = _SHARED.get(id(app))
            if adapter is None or adapter.app is not app:
                adapter = None
            elif _SHARED_OPTIONS.get(adapter) != self.wsgi_options:
                _log.warning(
                    "the WSGI app %s is given to two routers with different wsgi_options: it "
                    "gets one WSGIToASGI (and one thread pool) for each; give it the same "
                    "options, or wrap it once with crossgate.routing.wsgi() and give both "
                    "routers the result",
                    describe(app),
                )
                adapter = None
            if adapter is None:
                adapter = _SHARED[id(app)] = WSGIToASGI(app, **self.wsgi_options)
                _SHARED_OPTIONS[adapter] = dict(self.wsgi_options)
            child = Child(adapter, f"{label} (WSGI {describe(app)})")
        self._known[id(app)] = (app, child)
        self._children.append(child)
        return child

    @property
    def apps(self) -> tuple[App, ...]:
        """The sub-apps as the router calls them (WSGI apps in their `WSGIToASGI`), in order."""
        return tuple(child.app for child in self._children)

    def close(self) -> None:
        """Stop the sub-apps' `WSGIToASGI` thread pools (docs/routing.md, "Lifespan fan-out")."""
        for child in self._children:
            if isinstance(child.app, WSGIToASGI | Router):
                child.app.close()

    async def _fanout(self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        server_state = scope.get("state")
        # No "state" key: the server keeps no lifespan state (ASGI lifespan spec); the router does.
        state: dict[str, Any] = server_state if server_state is not None else {}
        drivers = [LifespanDriver(c.app, name=c.name, logger=_log) for c in self._children]
        stops: list[Step] = []  # what started; each returns what failed as it stopped

        async def startup() -> str | None:
            error = await self._startup(state, scope.get("asgi"), drivers, stops)
            if error is not None:
                await _stop_all(stops)  # the server learns of the first failure only
                return error
            for child, driver in zip(self._children, drivers, strict=True):
                own = driver.state
                # A sub-app that changed nothing needs no copy of its own per request.
                same = own.keys() == state.keys() and all(own[k] is state[k] for k in own)
                child.state = None if same and (server_state is not None or not own) else own
            return None

        try:
            await answer_lifespan(receive, send, startup, partial(_stop_all, stops))
        finally:
            # The server gave up on lifespan (a cancellation): no sub-app task outlives it.
            for driver in reversed(drivers):
                await driver.abort()

    async def _startup(
        self, state: dict[str, Any], asgi: object, drivers: list[LifespanDriver], stops: list[Step]
    ) -> str | None:
        for child in self._children:
            child.state = None
        if self._lifespan is not None:
            try:
                manager = self._lifespan(self)
                value = await manager.__aenter__()
            except Exception as exc:
                _log.exception("the lifespan context of %r failed to start", self)
                return f"the lifespan context failed to start: {exc!r}"
            stops.append(partial(self._exit, manager))
            if value is not None:
                state.update(value)
        error = await run_hooks(self._on_startup, "on_startup")
        if error is not None:
            return error
        stops.append(partial(run_hooks, self._on_shutdown, "on_shutdown"))
        for driver in drivers:
            # A namespace of its own, so that sub-apps never overwrite each other's keys.
            await driver.startup(state=dict(state), asgi=asgi)
            if driver.failure is not None:
                return driver.failure
            stops.append(partial(_shut_down, driver))
        return None

    async def _exit(self, manager: AbstractAsyncContextManager[object]) -> str | None:
        try:
            await manager.__aexit__(None, None, None)
        except Exception as exc:
            _log.exception("the lifespan context of %r failed to stop", self)
            return f"the lifespan context failed to stop: {exc!r}"
        return None


async def _shut_down(driver: LifespanDriver) -> str | None:
    await driver.shutdown()
    return driver.failure


async def _stop_all(stops: list[Step]) -> str | None:
    errors = []
    while stops:
        error = await stops.pop()()
        if error is not None:
            errors.append(error)
    return "; ".join(errors) or None


async def call(child: Child, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    """Call a sub-app with ``scope``, or a copy carrying the sub-app's own lifespan state."""
    if child.state is not None:
        scope = {**scope, "state": child.state.copy()}
    await child.app(scope, receive, downstream(child, send))


# The messages that carry response headers (ASGI HTTP and WebSocket specs).
_WITH_HEADERS: Final = frozenset(
    {
        "http.response.start",
        "http.response.trailers",
        "websocket.accept",
        "websocket.http.response.start",
    }
)


def downstream(child: Child, send: ASGISend) -> ASGISend:
    """The ``send`` a sub-app gets: header names lowercased (ASGI spec, RFC 9113 8.2.1)."""
    if isinstance(child.app, WSGIToASGI | Router):
        return send

    async def send_lowercase(message: Message) -> None:
        if message["type"] in _WITH_HEADERS:
            headers = message.get("headers")
            if headers:
                if not isinstance(headers, list | tuple):
                    # Any iterable will do (ASGI spec): read it once, pass the list on.
                    headers = list(headers)
                    message = {**message, "headers": headers}
                if any(name != name.lower() for name, _ in headers):
                    # A copy: the app may keep or reuse the message it sent.
                    lowered = [(name.lower(), value) for name, value in headers]
                    message = {**message, "headers": lowered}
        await send(message)

    return send_lowercase
