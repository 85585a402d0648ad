"""`ProxyHeaders` (ASGI) and `WSGIProxyHeaders`: believe a trusted reverse proxy about clients."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Generic
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

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
from crossgate.types import ASGIApp, ASGIReceive, ASGISend

__all__ = ["PEER_KEY", "ProxyHeaders", "WSGIProxyHeaders"]

PEER_KEY = "crossgate.proxy_peer"

_log = logging.getLogger("crossgate.middleware")


def _environ_keys(names: Iterable[str]) -> tuple[str, ...]:
    return tuple("HTTP_" + name.upper().replace("-", "_") for name in names)


_STRIP = frozenset(name.encode("latin-1") for name in PROXY_HEADERS)
_STRIP_KEYS = _environ_keys(sorted(PROXY_HEADERS))
_WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss"}


class _ProxyHeadersBase(Generic[App]):
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
        # A trusted proxy passes through the proxy headers it does not set: the client's.
        read = self.policy.header_names
        self._unread = tuple(sorted(PROXY_HEADERS.difference(read)))
        self._unread_b = frozenset(name.encode("latin-1") for name in self._unread)
        self._collect = self._unread_b.union((name.encode("latin-1") for name in read), [b"host"])
        self._keys = tuple(zip(read, _environ_keys(read), strict=True))
        self._unread_keys = _environ_keys(self._unread)

    def _decide(
        self, values: Mapping[str, str], scheme: str, host: str | None, peer: str | None
    ) -> ProxyDecision:
        decision = self.policy.decide(values, scheme=scheme, host=host)
        for reason in decision.ignored:
            _log.debug("ignored a proxy header from %s: %s", peer or "unix socket", reason)
        return decision


class ProxyHeaders(_ProxyHeadersBase[ASGIApp]):
    """ASGI middleware: take client, scheme, host, port and prefix from a trusted proxy.

    Raises:
        ValueError: an invalid option (bad ``trusted`` entry, ``mode``, ``hops`` or ``fields``).
    """

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
        # One pass: the headers read, those to strip, and Host (RFC 9110 section 5.3 joins).
        values = collect_headers(headers, self._collect)
        host = values.pop("host", None)
        strip = False
        for key in self._unread:
            if values.pop(key, None) is not None:
                strip = self.strip_untrusted
        decision = self._decide(values, scope.get("scheme", "http"), host, peer)
        if strip:
            scope = {**scope, "headers": [(n, v) for n, v in headers if n not in self._unread_b]}
        if decision is NO_CHANGE:
            await self.app(scope, receive, send)
            return
        scope = {**scope, PEER_KEY: peer}
        client = decision.client
        if client is not None:
            # ASGI spec, HTTP scope: client is (host, port), or None when unknown.
            scope["client"] = None if client.host is None else (client.host, client.port or 0)
        if decision.scheme is not None:
            websocket = kind == "websocket"
            scope["scheme"] = _WEBSOCKET_SCHEMES[decision.scheme] if websocket else decision.scheme
        if decision.host is not None:
            others = [(n, v) for n, v in scope["headers"] if n != b"host"]
            scope["headers"] = [(b"host", decision.host.encode("latin-1")), *others]
        if decision.server is not None:
            scope["server"] = decision.server
        prefix = decision.prefix
        if prefix is not None:
            # ASGI spec: path includes root_path, and raw_path stays the encoded form of path.
            scope["root_path"] = prefix.path + (scope.get("root_path") or "")
            scope["path"] = prefix.path + scope["path"]
            if scope.get("raw_path"):
                scope["raw_path"] = prefix.raw + scope["raw_path"]
        await self.app(scope, receive, send)


class WSGIProxyHeaders(_ProxyHeadersBase[WSGIApplication]):
    """WSGI middleware: `ProxyHeaders` for a WSGI application; the environ changes in place.

    Raises:
        ValueError: an invalid option.
    """

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        peer = environ.get("REMOTE_ADDR") or None
        trusted = self.policy.trusts(peer)
        if self.strip_untrusted:
            for key in self._unread_keys if trusted else _STRIP_KEYS:
                environ.pop(key, None)
        if not trusted:
            return self.app(environ, start_response)
        values = {name: environ[key] for name, key in self._keys if key in environ}
        scheme = environ.get("wsgi.url_scheme", "http")
        decision = self._decide(values, scheme, environ.get("HTTP_HOST"), peer)
        if decision is NO_CHANGE:
            return self.app(environ, start_response)
        environ[PEER_KEY] = peer or ""
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
            environ["SERVER_NAME"], port = decision.server
            environ["SERVER_PORT"] = str(port)
        prefix = decision.prefix
        if prefix is not None:
            # PEP 3333, "Unicode Issues": environ strings carry the path's bytes as latin-1.
            script_name = prefix.path.encode("utf-8").decode("latin-1")
            environ["SCRIPT_NAME"] = script_name + environ.get("SCRIPT_NAME", "")
            for key in ("RAW_URI", "REQUEST_URI"):
                if key in environ:
                    environ[key] = prefix.raw.decode("ascii") + environ[key]
        return self.app(environ, start_response)
