"""`ProxyHeaders` (ASGI) and `WSGIProxyHeaders`: believe a trusted reverse proxy about the client.

Behind a proxy, the server sees the proxy as the client, plain HTTP as the scheme and the
proxy's upstream name as the host. These middleware restore client address, scheme, host, port
and prefix from the proxy's ``X-Forwarded-*`` or RFC 7239 ``Forwarded`` headers, only when the
direct peer is a trusted proxy (`crossgate.sansio.proxy_headers.ProxyPolicy` decides for both
sides), and remove the proxy headers they do not believe, so that nothing further in (Django's
``USE_X_FORWARDED_HOST``, a framework's own proxy fix) can be fooled by them either.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Generic

from crossgate.middleware._common import App
from crossgate.sansio.headers import collect_headers
from crossgate.sansio.proxy_headers import (
    FIELDS,
    NO_CHANGE,
    PROXY_HEADERS,
    Mode,
    ProxyDecision,
    ProxyPolicy,
)
from crossgate.types import (
    ASGIApp,
    ASGIReceive,
    ASGISend,
    StartResponse,
    WSGIApplication,
    WSGIEnvironment,
)

__all__ = ["PEER_KEY", "ProxyHeaders", "WSGIProxyHeaders"]

# The scope / environ key of the proxy's own address when the client address was replaced, for
# middleware further in that must know which proxy spoke (RequestID). None / "" for a Unix socket.
PEER_KEY = "crossgate.proxy_peer"

_log = logging.getLogger("crossgate.middleware")

_STRIP = frozenset(name.encode("latin-1") for name in PROXY_HEADERS)


def _environ_key(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")


_STRIP_KEYS = tuple(_environ_key(name) for name in sorted(PROXY_HEADERS))
_WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss"}


class _ProxyHeadersBase(Generic[App]):
    """The constructor of `ProxyHeaders` and `WSGIProxyHeaders`: the options, in one place."""

    def __init__(
        self,
        app: App,
        *,
        trusted: str | Iterable[str] = ("127.0.0.1", "::1"),
        mode: Mode = "x-forwarded",
        hops: int = 1,
        fields: Iterable[str] = FIELDS,
        strip_untrusted: bool = True,
    ) -> None:
        self.app = app
        self.policy = ProxyPolicy(trusted=trusted, mode=mode, hops=hops, fields=fields)
        self.strip_untrusted = strip_untrusted
        # Proxy headers a trusted proxy passes through without setting them (those outside
        # ``mode`` and ``fields``) come from the client: removed as well.
        self._unread = tuple(sorted(PROXY_HEADERS.difference(self.policy.header_names)))
        self._prepare()

    def _prepare(self) -> None:
        """Turn the header names into the side's own spelling, once."""

    def _decide(
        self, values: Mapping[str, str], scheme: str, host: str | None, peer: str | None
    ) -> ProxyDecision:
        decision = self.policy.decide(values, scheme=scheme, host=host)
        for reason in decision.ignored:
            _log.debug("ignored a proxy header from %s: %s", peer or "unix socket", reason)
        return decision


class ProxyHeaders(_ProxyHeadersBase[ASGIApp]):
    """ASGI middleware: take client, scheme, host, port and prefix from a trusted proxy.

    Args:
        app: the ASGI application.
        trusted: the direct peers to believe: IP addresses, networks (``"10.0.0.0/8"``),
            ``"unix"``, ``"*"`` for anyone (dangerous). A string is split on commas.
        mode: ``"x-forwarded"`` or ``"forwarded"`` (RFC 7239, plus ``X-Forwarded-Prefix``).
        hops: how many trusted proxies stand in front of the app.
        fields: which of ``for``, ``proto``, ``host``, ``port``, ``prefix`` to take.
        strip_untrusted: remove the proxy headers not believed.

    Raises:
        ValueError: an invalid option (bad ``trusted`` entry, ``mode``, ``hops`` or ``fields``).

    ``http`` and ``websocket`` scopes are handled, others pass through untouched. The scope is
    copied; the proxy's own address is kept under ``"crossgate.proxy_peer"``, for `RequestID`.
    Malformed header values never raise: the field is ignored (logged at DEBUG on the
    ``crossgate.middleware`` logger) and the original value kept.
    """

    def _prepare(self) -> None:
        self._unread_b = frozenset(name.encode("latin-1") for name in self._unread)
        read = (name.encode("latin-1") for name in self.policy.header_names)
        self._collect = self._unread_b.union(read, [b"host"])

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: ASGIReceive, send: ASGISend
    ) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        peer = client[0] if client else None
        headers = scope["headers"]
        if not self.policy.trusts(peer):
            if self.strip_untrusted and any(name in _STRIP for name, _ in headers):
                scope = {**scope, "headers": [(n, v) for n, v in headers if n not in _STRIP]}
            await self.app(scope, receive, send)
            return
        # One linear pass (RFC 9110 section 5.3: repeated lines of a list header are one list):
        # the headers read, those to strip, and Host, joined as a WSGI server joins it.
        values = collect_headers(headers, self._collect)
        host = values.pop("host", None)
        strip = False
        for key in self._unread:
            if values.pop(key, None) is not None:
                strip = self.strip_untrusted
        decision = self._decide(values, scope.get("scheme", "http"), host, peer)
        if strip:
            scope = {**scope, "headers": [(n, v) for n, v in headers if n not in self._unread_b]}
        if decision is not NO_CHANGE:
            scope = _apply_to_scope(scope, decision)
            scope[PEER_KEY] = peer
        await self.app(scope, receive, send)


def _apply_to_scope(scope: MutableMapping[str, Any], decision: ProxyDecision) -> dict[str, Any]:
    """A copy of ``scope`` with ``decision`` applied (the server's scope is left alone)."""
    new = dict(scope)
    client = decision.client
    if client is not None:
        # ASGI spec, HTTP scope: client is (host, port), or None when unknown.
        new["client"] = None if client.host is None else (client.host, client.port or 0)
    if decision.scheme is not None:
        if new["type"] == "websocket":
            new["scheme"] = _WEBSOCKET_SCHEMES[decision.scheme]
        else:
            new["scheme"] = decision.scheme
    if decision.host is not None:
        host = decision.host.encode("latin-1")
        headers = [(n, v) for n, v in new["headers"] if n != b"host"]
        headers.insert(0, (b"host", host))
        new["headers"] = headers
    if decision.server is not None:
        new["server"] = decision.server
    prefix = decision.prefix
    if prefix is not None:
        # ASGI spec, HTTP scope: root_path is the mount point, and path includes it; raw_path
        # must stay the encoded form of path.
        new["root_path"] = prefix.path + (new.get("root_path") or "")
        new["path"] = prefix.path + new["path"]
        raw_path = new.get("raw_path")
        if raw_path:
            new["raw_path"] = prefix.raw + raw_path
    return new


class WSGIProxyHeaders(_ProxyHeadersBase[WSGIApplication]):
    """WSGI middleware: `ProxyHeaders` for a WSGI application, with the same options.

    The environ is changed in place, as PEP 3333 lets middleware do: ``REMOTE_ADDR``,
    ``REMOTE_PORT``, ``wsgi.url_scheme``, ``HTTPS``, ``HTTP_HOST``, ``SERVER_NAME``,
    ``SERVER_PORT``, ``SCRIPT_NAME`` (and ``RAW_URI`` / ``REQUEST_URI`` when present).

    Raises:
        ValueError: an invalid option.
    """

    def _prepare(self) -> None:
        self._keys = tuple((name, _environ_key(name)) for name in self.policy.header_names)
        self._unread_keys = tuple(_environ_key(name) for name in self._unread)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        peer = environ.get("REMOTE_ADDR") or None
        if not self.policy.trusts(peer):
            if self.strip_untrusted:
                for key in _STRIP_KEYS:
                    environ.pop(key, None)
            return self.app(environ, start_response)
        if self.strip_untrusted:
            for key in self._unread_keys:
                environ.pop(key, None)
        values = {name: environ[key] for name, key in self._keys if key in environ}
        scheme = environ.get("wsgi.url_scheme", "http")
        decision = self._decide(values, scheme, environ.get("HTTP_HOST"), peer)
        if decision is not NO_CHANGE:
            _apply_to_environ(environ, decision)
            environ[PEER_KEY] = peer or ""
        return self.app(environ, start_response)


def _apply_to_environ(environ: WSGIEnvironment, decision: ProxyDecision) -> None:
    client = decision.client
    if client is not None:
        environ["REMOTE_ADDR"] = client.host or ""
        if client.host is not None and client.port is not None:
            environ["REMOTE_PORT"] = str(client.port)
        else:
            environ.pop("REMOTE_PORT", None)  # the proxy's port would be a lie
    if decision.scheme is not None:
        environ["wsgi.url_scheme"] = decision.scheme
        if decision.scheme == "https" or "HTTPS" in environ:
            environ["HTTPS"] = "on" if decision.scheme == "https" else "off"
    if decision.host is not None:
        environ["HTTP_HOST"] = decision.host
    if decision.server is not None:
        name, port = decision.server
        environ["SERVER_NAME"] = name
        environ["SERVER_PORT"] = str(port)
    prefix = decision.prefix
    if prefix is not None:
        # PEP 3333, "Unicode Issues": environ strings carry the path's bytes as latin-1.
        environ["SCRIPT_NAME"] = prefix.path.encode("utf-8").decode("latin-1") + environ.get(
            "SCRIPT_NAME", ""
        )
        for key in ("RAW_URI", "REQUEST_URI"):
            if key in environ:
                environ[key] = prefix.raw.decode("ascii") + environ[key]
