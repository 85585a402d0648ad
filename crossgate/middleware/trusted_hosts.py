"""`TrustedHosts` (ASGI) and `WSGITrustedHosts`: serve only the host names you own."""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping
from typing import Any, Generic
from urllib.parse import quote
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from crossgate._answer import respond
from crossgate.middleware._common import App, asgi_refuse, wsgi_refuse
from crossgate.sansio.asgi_response import error_response
from crossgate.sansio.headers import single_header
from crossgate.sansio.trusted_hosts import HostDecision, HostPolicy, redirect_location
from crossgate.types import ASGIApp, ASGIReceive, ASGISend

__all__ = ["TrustedHosts", "WSGITrustedHosts"]

_log = logging.getLogger("crossgate.middleware")


def _redirect(
    decision: HostDecision, scheme: str, path: bytes, query: bytes, method: str, host: str | None
) -> tuple[int, str, tuple[tuple[bytes, bytes]]]:
    path = path.partition(b"?")[0]  # some servers leave the query in the raw path
    location = redirect_location(scheme, decision.location_host, path, query)
    _log.debug("redirecting %r to %r (%s)", host, location, decision.reason)
    # RFC 9110 sections 15.4.2 and 15.4.9: a 301 may turn a POST into a GET; a 308 may not.
    status = 301 if method in ("GET", "HEAD") else 308
    return status, f"moved to {location}", ((b"location", location.encode("ascii")),)


class _TrustedHostsBase(Generic[App]):
    def __init__(
        self,
        app: App,
        *,
        allowed_hosts: Iterable[str],
        redirect_to: str | None = None,
        www_redirect: bool = False,
    ) -> None:
        self.app = app
        self.policy = HostPolicy(allowed_hosts, redirect_to=redirect_to, www_redirect=www_redirect)


class TrustedHosts(_TrustedHostsBase[ASGIApp]):
    """ASGI middleware: answer 400 to requests whose ``Host`` is not one of ``allowed_hosts``.

    Raises:
        ValueError: an invalid pattern, no pattern, or an invalid or not allowed ``redirect_to``.
    """

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: ASGIReceive, send: ASGISend
    ) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        host = single_header(scope["headers"], b"host")
        scheme = scope.get("scheme") or "http"
        decision = self.policy.check(host, scheme, redirect=kind == "http")
        if decision.action == "allow":
            await self.app(scope, receive, send)
        elif decision.action == "refuse":
            await asgi_refuse(scope, receive, send, 400, decision.reason)
        else:
            path = scope.get("raw_path") or quote(
                scope["path"].encode("utf-8", "surrogateescape")
            ).encode("ascii")
            query = scope.get("query_string") or b""
            method = scope.get("method", "GET")
            status, text, extra = _redirect(decision, scheme, path, query, method, host)
            await respond(send, status, text, headers=extra)


class WSGITrustedHosts(_TrustedHostsBase[WSGIApplication]):
    """WSGI middleware: `TrustedHosts` for a WSGI application, with the same options.

    Raises:
        ValueError: an invalid option.
    """

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST")
        scheme = environ.get("wsgi.url_scheme") or "http"
        decision = self.policy.check(host, scheme)
        if decision.action == "allow":
            return self.app(environ, start_response)
        if decision.action == "refuse":
            return wsgi_refuse(environ, start_response, 400, decision.reason)
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        # PEP 3333: the environ carries the decoded path's bytes as latin-1.
        decoded = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        path = raw.encode("latin-1") if raw else quote(decoded.encode("latin-1")).encode("ascii")
        query = environ.get("QUERY_STRING", "").encode("latin-1")
        method = environ.get("REQUEST_METHOD", "GET")
        status, text, extra = _redirect(decision, scheme, path, query, method, host)
        line, headers, body = error_response(status, text, headers=extra)
        start_response(line, headers)
        return [body]
