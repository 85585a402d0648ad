"""Routers for incremental migration: one ASGI entry point in front of old and new apps.

* `ProtocolRouter` sends each connection to an app by its scope type: websockets to new async
  code, HTTP to the legacy WSGI app.
* `PathRouter` with `Mount` sends each request to the app mounted at the longest matching path
  prefix, with ``root_path`` (and so ``SCRIPT_NAME``) set the way the ASGI spec says.
* `Fallback` tries a new app first and hands whatever it does not know (a 404) to the legacy
  app, request body included: the strangler-fig pattern.

Every router accepts ASGI and WSGI apps alike (see `is_asgi` for the rule; `asgi` and `wsgi`
override it), answers the server's lifespan protocol itself and fans it out to every sub-app,
each with its own ``state``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from crossgate._answer import refuse, respond
from crossgate.exceptions import CrossgateError, PeerProtocolError
from crossgate.routing._base import (
    App,
    Router,
    asgi,
    call,
    downstream,
    is_asgi,
    reject,
    wsgi,
)
from crossgate.routing._fallback import DROP, HTTPAttempt, Policy, WebSocketAttempt
from crossgate.routing._lifespan import Hook, Lifespan
from crossgate.sansio.paths import MountTable, normalize_prefix, slash_redirect_location
from crossgate.types import ASGIReceive, ASGISend, Message

__all__ = [
    "App",
    "Fallback",
    "Hook",
    "Lifespan",
    "Mount",
    "PathRouter",
    "ProtocolRouter",
    "asgi",
    "is_asgi",
    "wsgi",
]

_log = logging.getLogger("crossgate.routing")

MIB: Final = 1024 * 1024


# -- ProtocolRouter -----------------------------------------------------------------------------


class ProtocolRouter(Router):
    """Send each connection to the app registered for its scope type.

    ```python
    application = ProtocolRouter({"http": flask_app, "websocket": starlette_app})
    ```

    Dispatch is one dictionary lookup on ``scope["type"]``. An ``http`` connection with no
    entry gets a 500 and a websocket a refused handshake, both with the reason, logged as
    errors; another scope type with no entry raises (ASGI spec: an app raises for a scope type
    it does not know). ``lifespan`` is always the router's: it fans it out to every app.

    Args:
        routes: scope type -> ASGI or WSGI app (WSGI apps are wrapped in `WSGIToASGI`).
        wsgi_options: keyword arguments for each `WSGIToASGI` the router makes.
        on_startup: callables (plain or async) run at lifespan startup, before the apps start.
        on_shutdown: callables run at lifespan shutdown, after the apps stopped.
        lifespan: a callable taking the router and returning an async context manager, entered
            before everything else at startup and left last at shutdown; a mapping it yields
            joins the lifespan state.

    Raises:
        ValueError: ``routes`` has a ``lifespan`` entry, or a `WSGIToASGI` option is out of
            range.
        TypeError: an app is not callable.
    """

    def __init__(
        self,
        routes: Mapping[str, App],
        *,
        wsgi_options: Mapping[str, Any] | None = None,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        lifespan: Lifespan | None = None,
    ) -> None:
        if "lifespan" in routes:
            raise ValueError(
                "ProtocolRouter handles lifespan itself and fans it out to every app; use "
                "on_startup, on_shutdown or lifespan= for code of the router's own"
            )
        super().__init__(wsgi_options, on_startup, on_shutdown, lifespan)
        self._routes = {kind: self._child(app, f"[{kind!r}]") for kind, app in routes.items()}

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        child = self._routes.get(scope["type"])
        if child is not None:
            await call(child, scope, receive, send)
            return
        kind = scope["type"]
        if kind == "lifespan":
            await self._fanout(scope, receive, send)
            return
        reason = f"no app is configured for {kind!r} connections"
        if kind != "http" and kind != "websocket":
            raise CrossgateError(f"ProtocolRouter: {reason}")
        _log.error("ProtocolRouter: %s; answering 500", reason)
        await refuse(scope, receive, send, 500, reason)


# -- PathRouter and Mount -----------------------------------------------------------------------


class Mount:
    """An app served under a path prefix, for `PathRouter`.

    ``prefix`` is a decoded path such as ``"/legacy"``; a trailing ``/`` is ignored. The app
    serves ``/legacy`` itself and everything below ``/legacy/``, never ``/legacyx``.

    Raises:
        TypeError: ``prefix`` is not a `str`.
        ValueError: ``prefix`` does not start with ``/`` or is ``/`` alone.
    """

    __slots__ = ("app", "prefix")

    def __init__(self, prefix: str, app: App) -> None:
        self.prefix = normalize_prefix(prefix)
        self.app = app

    def __repr__(self) -> str:
        return f"Mount({self.prefix!r}, {self.app!r})"


class PathRouter(Router):
    """Send each ``http`` and ``websocket`` connection to the app mounted at its path.

    ```python
    application = PathRouter([Mount("/legacy", flask_app)], default=starlette_app)
    ```

    The longest prefix wins, at segment boundaries only. The mounted app gets ``root_path``
    extended by the prefix and ``path`` / ``raw_path`` unchanged (ASGI spec: ``path`` includes
    ``root_path``), so a WSGI app sees ``SCRIPT_NAME='/legacy'`` and ``PATH_INFO='/cart'``, and
    Flask's ``url_for`` and Django's ``reverse`` build URLs under the mount. A path from an
    older server that leaves ``root_path`` out of ``path`` is matched whole and put in the
    current form for the mounted app. Mounts nest: mount a `PathRouter`.

    A request for the bare prefix (``/legacy``) is served, the app seeing ``PATH_INFO=''``;
    with ``redirect_slashes`` an HTTP request for it gets a 307 to ``/legacy/`` instead.
    A path no mount matches goes to ``default`` with its scope untouched, or gets a 404 (a
    refused handshake for a websocket).

    Args:
        routes: the mounts, in lifespan order.
        default: the app for every other path; ASGI or WSGI.
        redirect_slashes: redirect ``/prefix`` to ``/prefix/`` rather than serve it.
        wsgi_options: keyword arguments for each `WSGIToASGI` the router makes.
        on_startup: callables (plain or async) run at lifespan startup, before the apps start.
        on_shutdown: callables run at lifespan shutdown, after the apps stopped.
        lifespan: an async context manager factory, as for `ProtocolRouter`.

    Raises:
        ValueError: two mounts share a prefix, or a `WSGIToASGI` option is out of range.
        TypeError: an app is not callable or a route is not a `Mount`.
    """

    def __init__(
        self,
        routes: Iterable[Mount],
        default: App | None = None,
        *,
        redirect_slashes: bool = False,
        wsgi_options: Mapping[str, Any] | None = None,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        lifespan: Lifespan | None = None,
    ) -> None:
        super().__init__(wsgi_options, on_startup, on_shutdown, lifespan)
        mounts = list(routes)
        for mount in mounts:
            if not isinstance(mount, Mount):
                raise TypeError(f"PathRouter routes are Mount objects, not {mount!r}")
        self._table = MountTable(
            (mount.prefix, self._child(mount.app, f"Mount({mount.prefix!r})")) for mount in mounts
        )
        self._route = self._table.route
        self._default = None if default is None else self._child(default, "default")
        self.redirect_slashes = redirect_slashes

    @property
    def prefixes(self) -> tuple[str, ...]:
        """The mount prefixes in the order they are tried: longest first."""
        return self._table.prefixes

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            try:
                found = self._route(scope.get("root_path"), scope["path"], scope.get("raw_path"))
            except PeerProtocolError as exc:
                await reject(scope, receive, send, exc)
                return
            if found is not None:
                child, child_root, child_path, raw_path = found
                if (
                    self.redirect_slashes
                    and kind == "http"
                    and (child_path or scope["path"]) == child_root
                ):
                    await self._redirect(scope, send)
                    return
                # ASGI spec: a middleware copies the scope before changing it, or the change
                # leaks to the caller.
                child_scope = dict(scope)
                child_scope["root_path"] = child_root
                if child_path is not None:
                    child_scope["path"] = child_path
                    if raw_path is not None:
                        child_scope["raw_path"] = raw_path
                if child.state is not None:
                    child_scope["state"] = child.state.copy()
                await child.app(child_scope, receive, downstream(child, send))
                return
        elif kind == "lifespan":
            await self._fanout(scope, receive, send)
            return
        if self._default is not None:
            await call(self._default, scope, receive, send)
        elif kind == "http" or kind == "websocket":
            _log.debug("PathRouter: no app is mounted at %r; answering 404", scope["path"])
            await refuse(scope, receive, send, 404, "no app is mounted at this path")
        else:
            raise CrossgateError(f"PathRouter cannot serve a {kind!r} scope without a default")

    async def _redirect(self, scope: Message, send: ASGISend) -> None:
        try:
            location = slash_redirect_location(
                scope.get("root_path") or "",
                scope["path"],
                scope.get("raw_path"),
                scope.get("query_string") or b"",
            )
        except PeerProtocolError as exc:
            _log.info("PathRouter: rejected a request: %s", exc)
            await respond(send, exc.status_code, str(exc))
            return
        await respond(
            send,
            307,
            "this mount is served with a trailing slash",
            headers=((b"location", location),),
        )


# -- Fallback -----------------------------------------------------------------------------------


class Fallback(Router):
    """Try ``primary`` first; what it answers with one of ``statuses`` goes to ``fallback``.

    The strangler-fig step of a migration: the new app serves what it knows, the legacy app
    everything else.

    ```python
    application = Fallback(fastapi_app, django_asgi_app)
    ```

    HTTP: when the primary's ``http.response.start`` carries a status in ``statuses`` (before
    any body, as the ASGI spec orders it), that answer is dropped, and once the primary
    returns the same request goes to the fallback: the request body the primary read is
    replayed, then the rest arrives live. The body is recorded only while the primary may
    still fall through: in memory up to ``buffer_size`` bytes, then in an anonymous temporary
    file, up to ``max_replay`` bytes; past that the request can no longer fall through and the
    primary's answer, whatever it is, goes to the client. The recording never reads ahead of
    the primary, so a large upload the primary accepts streams with the server's flow control.

    Websocket: a primary that refuses the connection before accepting it (a
    ``websocket.close``, or a denial response with the ``websocket.http.response`` extension,
    whatever its status) hands it to the fallback, which gets the messages the primary
    received (``websocket.connect``) again.

    Each app gets its own copy of the scope, so what the primary writes into its scope (as
    Starlette's router does) never reaches the fallback.

    Args:
        primary: the app tried first; ASGI or WSGI.
        fallback: the app for what the primary does not serve; ASGI or WSGI.
        statuses: the primary's statuses that send a request to the fallback.
        buffer_size: request body bytes kept in memory for a replay before spooling to disk.
        max_replay: request body bytes kept for a replay at most; ``None`` for no limit.
        wsgi_options: keyword arguments for each `WSGIToASGI` the router makes.
        on_startup: callables (plain or async) run at lifespan startup, before the apps start.
        on_shutdown: callables run at lifespan shutdown, after the apps stopped.
        lifespan: an async context manager factory, as for `ProtocolRouter`.

    Raises:
        ValueError: ``statuses`` is empty or holds something that is not an HTTP status,
            ``buffer_size`` or ``max_replay`` is below 1, or a `WSGIToASGI` option is out of
            range.
        TypeError: an app is not callable.
    """

    def __init__(
        self,
        primary: App,
        fallback: App,
        statuses: Iterable[int] = (404,),
        *,
        buffer_size: int = MIB,
        max_replay: int | None = 64 * MIB,
        wsgi_options: Mapping[str, Any] | None = None,
        on_startup: Sequence[Hook] = (),
        on_shutdown: Sequence[Hook] = (),
        lifespan: Lifespan | None = None,
    ) -> None:
        codes = frozenset(statuses)
        if not codes:
            raise ValueError("statuses must name at least one status")
        for code in codes:
            if type(code) is not int or not 100 <= code <= 599:
                raise ValueError(f"statuses holds {code!r}, which is not an HTTP status")
        if buffer_size < 1:
            raise ValueError("buffer_size must be at least 1 byte")
        if max_replay is not None and max_replay < 1:
            raise ValueError("max_replay must be at least 1 byte, or None")
        super().__init__(wsgi_options, on_startup, on_shutdown, lifespan)
        self.statuses = codes
        self.buffer_size = buffer_size
        self.max_replay = max_replay
        self._policy = Policy(codes, buffer_size, max_replay)
        self._primary = self._child(primary, "primary")
        self._fallback = self._child(fallback, "fallback")
        if self._primary is self._fallback:
            raise ValueError("the primary and the fallback are the same app")

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._fanout(scope, receive, send)
        else:
            raise CrossgateError(f"Fallback cannot serve a {kind!r} scope")

    def _primary_scope(self, scope: Message) -> Message:
        """The primary's own copy of the scope, ``state`` included, so nothing it writes
        there (Starlette's router updates the scope in place) reaches the fallback."""
        copy = dict(scope)
        state = self._primary.state
        if state is None:
            state = scope.get("state")
        if state is not None:
            copy["state"] = state.copy()
        return copy

    async def _http(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        attempt = HTTPAttempt(receive, downstream(self._primary, send), self._policy)
        try:
            await self._primary.app(self._primary_scope(scope), attempt.receive, attempt.send)
            if attempt.mode is DROP:
                _log.debug("Fallback: the primary did not serve %r", scope.get("path"))
                await call(self._fallback, scope, attempt.replay_receive(), send)
            elif attempt.missed:
                _log.warning(
                    "Fallback: the primary did not serve %r, but the request body passed "
                    "max_replay (%s bytes) and cannot be replayed; its answer went to the client",
                    scope.get("path"),
                    self.max_replay,
                )
        finally:
            attempt.discard()

    async def _websocket(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        attempt = WebSocketAttempt(receive, downstream(self._primary, send))
        await self._primary.app(self._primary_scope(scope), attempt.receive, attempt.send)
        if attempt.mode is DROP:
            _log.debug("Fallback: the primary refused the websocket %r", scope.get("path"))
            await call(self._fallback, scope, attempt.replay_receive(), send)
