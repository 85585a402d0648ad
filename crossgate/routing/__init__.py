"""Routers for incremental migration (docs/routing.md). Each raises `TypeError` for an app that
is not callable and `ValueError` for a `WSGIToASGI` option out of range."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from crossgate._answer import refuse
from crossgate.adapters._interface import is_asgi
from crossgate.exceptions import CrossgateError, PeerProtocolError
from crossgate.routing._base import App, Hook, Lifespan, Router, asgi, call, downstream, wsgi
from crossgate.routing._fallback import DROP, HTTPAttempt, WebSocketAttempt
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


class ProtocolRouter(Router):
    """Send each connection to the app ``routes`` maps its scope type to. An ``http`` or
    ``websocket`` connection with no entry gets a 500 and is logged; another scope type raises.

    Raises:
        ValueError: ``routes`` has a ``lifespan`` entry.
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
        kind = scope["type"]
        child = self._routes.get(kind)
        if child is not None:
            await call(child, scope, receive, send)
        elif kind == "lifespan":
            await self._fanout(scope, receive, send)
        elif kind == "http" or kind == "websocket":
            reason = f"no app is configured for {kind!r} connections"
            _log.error("ProtocolRouter: %s; answering 500", reason)
            await refuse(scope, receive, send, 500, reason)
        else:
            raise CrossgateError(f"ProtocolRouter: no app is configured for {kind!r} connections")


class Mount:
    """An app served under a decoded path prefix such as ``"/legacy"``, for `PathRouter`.

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
    """Send each ``http`` and ``websocket`` connection to the app mounted at the longest prefix
    of its path, else to ``default``, else a 404 (docs/routing.md, ``redirect_slashes`` too).

    Raises:
        ValueError: two mounts share a prefix.
        TypeError: a route is not a `Mount`.
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
            location = None
            try:
                found = self._route(scope.get("root_path"), scope["path"], scope.get("raw_path"))
                if found is not None and self.redirect_slashes and kind == "http":
                    location = _bare_prefix_location(scope, found[1], found[2])
            except PeerProtocolError as exc:  # a scope no server should send
                _log.info("PathRouter: rejected a %s connection: %s", kind, exc)
                await refuse(scope, receive, send, exc.status_code, str(exc))
                return
            if location is not None:
                reason = "this mount is served with a trailing slash"
                await refuse(scope, receive, send, 307, reason, headers=((b"location", location),))
                return
            if found is not None:
                child, child_root, child_path, raw_path = found
                child_scope = {**scope, "root_path": child_root}
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


def _bare_prefix_location(scope: Message, child_root: str, child_path: str | None) -> bytes | None:
    """The ``Location`` adding the ``/`` that a request for a bare mount prefix lacks, or None."""
    path = scope["path"]
    if (child_path or path) != child_root:
        return None
    query = scope.get("query_string") or b""
    return slash_redirect_location(scope.get("root_path") or "", path, scope.get("raw_path"), query)


class Fallback(Router):
    """Try ``primary`` first; what it answers with one of ``statuses`` (or a websocket it refuses)
    goes to ``fallback``, with the body replayed: in memory up to ``buffer_size`` bytes, then in
    a temporary file up to ``max_replay`` (``None``: no limit), past which the primary answers.

    Raises:
        ValueError: ``statuses`` is empty or holds something that is not an HTTP status,
            ``buffer_size`` or ``max_replay`` is below 1, or both apps are the same.
    """

    def __init__(
        self,
        primary: App,
        fallback: App,
        statuses: Iterable[int] = (404,),
        *,
        buffer_size: int = 1024 * 1024,
        max_replay: int | None = 64 * 1024 * 1024,
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
        self._primary = self._child(primary, "primary")
        self._fallback = self._child(fallback, "fallback")
        if self._primary is self._fallback:
            raise ValueError("the primary and the fallback are the same app")

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._fanout(scope, receive, send)
            return
        primary_send = downstream(self._primary, send)
        attempt: HTTPAttempt | WebSocketAttempt
        if kind == "http":
            attempt = HTTPAttempt(receive, primary_send, self)
        elif kind == "websocket":
            attempt = WebSocketAttempt(receive, primary_send)
        else:
            raise CrossgateError(f"Fallback cannot serve a {kind!r} scope")
        # Its own copy of the scope and state: Starlette's router writes there.
        state = self._primary.state if self._primary.state is not None else scope.get("state")
        primary_scope = dict(scope) if state is None else {**scope, "state": state.copy()}
        try:
            await self._primary.app(primary_scope, attempt.receive, attempt.send)
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
