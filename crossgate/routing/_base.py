"""What crossgate's three routers share: telling ASGI apps from WSGI apps (and the markers
that override the rule), preparing sub-apps and handing lifespan to the fan-out, and the
answers a router gives when it cannot route.

The public names here are re-exported by `crossgate.routing`; import them from there.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from crossgate._answer import refuse
from crossgate.adapters._interface import describe, is_asgi
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.exceptions import PeerProtocolError
from crossgate.routing._lifespan import Child, Fanout, Hook, Lifespan
from crossgate.types import ASGIApp, ASGIReceive, ASGISend, Message, WSGIApplication

__all__ = [
    "App",
    "Router",
    "asgi",
    "call",
    "downstream",
    "is_asgi",
    "reject",
    "wsgi",
]

_log = logging.getLogger("crossgate.routing")

App = Callable[..., Any]
"""An ASGI 3 application or a PEP 3333 WSGI application; `is_asgi` tells which."""


# -- telling ASGI from WSGI ---------------------------------------------------------------------


class _ExplicitASGI:
    """What `asgi` returns: the app, marked ASGI; routers unwrap it and call the app directly."""

    __crossgate_asgi__ = True

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        await self.app(scope, receive, send)

    def __repr__(self) -> str:
        return f"asgi({self.app!r})"


def asgi(app: App) -> ASGIApp:
    """Mark ``app`` as ASGI for the routers, whatever `is_asgi` would say.

    The result is itself an ASGI app that calls ``app``; a router unwraps it and calls ``app``
    directly.

    Raises:
        TypeError: ``app`` is not callable.
    """
    if not callable(app):
        raise TypeError(f"an ASGI app is callable; got {type(app).__name__}")
    return _ExplicitASGI(app)


def wsgi(app: WSGIApplication, **options: Any) -> WSGIToASGI:
    """Mark ``app`` as WSGI, with its own `WSGIToASGI` options (``workers``, ``executor`` ...).

    Returns the `WSGIToASGI` adapter, which any router uses as it is.

    Raises:
        TypeError: ``app`` is not callable, or an option is unknown.
        ValueError: an option is out of range.
    """
    if not callable(app):
        raise TypeError(f"a WSGI app is callable; got {type(app).__name__}")
    # Marked WSGI by the caller: the adapter does not second-guess it.
    return WSGIToASGI(app, **{"interface": "wsgi", **options})


# -- what every router shares -------------------------------------------------------------------

# The `WSGIToASGI` the routers made for each WSGI app object (by id), for as long as a router
# still uses it, and the options it was made with: another router given the same app object
# with the same options shares it (and its thread pool) instead of making a second one.
_SHARED: weakref.WeakValueDictionary[int, WSGIToASGI] = weakref.WeakValueDictionary()
_SHARED_OPTIONS: weakref.WeakKeyDictionary[WSGIToASGI, dict[str, Any]] = weakref.WeakKeyDictionary()


class Router:
    """Sub-app preparation, lifespan fan-out and clean-up, common to the three routers."""

    def __init__(
        self,
        wsgi_options: Mapping[str, Any] | None,
        on_startup: Sequence[Hook],
        on_shutdown: Sequence[Hook],
        lifespan: Lifespan | None,
    ) -> None:
        self.wsgi_options: dict[str, Any] = dict(wsgi_options or {})
        self._children: list[Child] = []
        # id(app) -> (app, child): the same app given twice is one sub-app with one lifespan
        # (and, for WSGI, one thread pool). The app is kept so that its id stays unique.
        self._known: dict[int, tuple[object, Child]] = {}
        self._fanout = Fanout(self, self._children, list(on_startup), list(on_shutdown), lifespan)

    def _child(self, app: App, label: str) -> Child:
        if not callable(app):
            raise TypeError(f"{label}: an app is callable; got {type(app).__name__}")
        known = self._known.get(id(app))
        if known is not None:
            return known[1]
        if isinstance(app, _ExplicitASGI):
            target: App = app.app
            name = f"{label} ({describe(target)})"
        elif is_asgi(app):
            target, name = app, f"{label} ({describe(app)})"
        else:
            target, name = self._adapter(app), f"{label} (WSGI {describe(app)})"
        child = Child(target, name)
        self._known[id(app)] = (app, child)
        self._children.append(child)
        return child

    def _adapter(self, app: App) -> WSGIToASGI:
        """The `WSGIToASGI` for the WSGI app ``app``: the one another router already made for
        this very object with the same options, else a new one.

        One WSGI app given to two routers (a `Mount` and a `Fallback`) gets one adapter, so
        one thread pool, not one per router.
        """
        shared = _SHARED.get(id(app))
        # The adapter holds its app, so while it lives, no other object can have that id.
        if shared is not None and shared.app is app:
            if _SHARED_OPTIONS.get(shared) == self.wsgi_options:
                return shared
            _log.warning(
                "the WSGI app %s is given to two routers with different wsgi_options: it gets "
                "one WSGIToASGI (and one thread pool) for each; give it the same options, or "
                "wrap it once with crossgate.routing.wsgi() and give both routers the result",
                describe(app),
            )
        adapter = WSGIToASGI(app, **self.wsgi_options)
        _SHARED[id(app)] = adapter
        _SHARED_OPTIONS[adapter] = dict(self.wsgi_options)
        return adapter

    @property
    def apps(self) -> tuple[App, ...]:
        """The sub-apps as the router calls them (WSGI apps inside their `WSGIToASGI`).

        In lifespan order: startup runs through them first to last, shutdown last to first.
        """
        return tuple(child.app for child in self._children)

    def close(self) -> None:
        """Stop the thread pools of the `WSGIToASGI` adapters among the sub-apps (those this
        router made, and those given to it, such as `wsgi` returns), and of nested routers'.

        Lifespan shutdown already does this; call it when the server runs no lifespan.
        """
        for child in self._children:
            if isinstance(child.app, WSGIToASGI | Router):
                child.app.close()


async def call(child: Child, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    """Call a sub-app with ``scope``, or a copy carrying the sub-app's own lifespan state."""
    state = child.state
    send = downstream(child, send)
    if state is None:
        await child.app(scope, receive, send)
    else:
        await child.app({**scope, "state": state.copy()}, receive, send)


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
    """The ``send`` a sub-app gets: ``send`` itself for crossgate's own adapters and routers,
    which send lowercase header names already; for any other app, ``send`` behind
    `lowercase_header_names`."""
    if isinstance(child.app, WSGIToASGI | Router):
        return send
    return lowercase_header_names(send)


def lowercase_header_names(send: ASGISend) -> ASGISend:
    """Wrap ``send`` so that the header names of every response go out in lowercase.

    The ASGI spec asks apps for lowercase names ("Header names must be lowercased" in the
    HTTP ``http.response.start`` message), and HTTP/2 and HTTP/3 forbid uppercase ones (RFC
    9113 section 8.2.1, RFC 9114 section 4.2). Django's ``ASGIHandler`` sends them as the
    response holds them (``Content-Type``); hypercorn's HTTP/3 passes them on, and the client
    aborts the stream. Values are left as they are; a message whose names are lowercase
    already is passed on as it is.
    """

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


async def reject(
    scope: Message, receive: ASGIReceive, send: ASGISend, error: PeerProtocolError
) -> None:
    """Answer a request whose scope the router cannot route (a server bug, in practice)."""
    _log.info("rejected a %s connection: %s", scope["type"], error)
    await refuse(scope, receive, send, error.status_code, str(error))
