"""`OriginCheck` (ASGI) and `WSGIOriginCheck`: refuse cross-site websockets and form posts.

Browsers attach cookies to a websocket handshake from any page, and websockets are not subject
to CORS: without an ``Origin`` check, a page on another site can talk to your websocket as the
logged-in user (cross-site websocket hijacking); the same holds for a cross-site form ``POST``
(CSRF). These middleware answer ``403 Forbidden`` with the reason to a request from an origin
not allowed (`crossgate.sansio.origin_check.OriginPolicy` decides for both sides).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any, Generic

from crossgate.middleware._common import App, asgi_refuse, wsgi_refuse
from crossgate.sansio.headers import single_header
from crossgate.sansio.origin_check import OriginPolicy
from crossgate.types import (
    ASGIApp,
    ASGIReceive,
    ASGISend,
    StartResponse,
    WSGIApplication,
    WSGIEnvironment,
)

__all__ = ["OriginCheck", "WSGIOriginCheck"]


class _OriginCheckBase(Generic[App]):
    """The constructor of `OriginCheck` and `WSGIOriginCheck`: the options, in one place."""

    def __init__(
        self,
        app: App,
        *,
        allowed_origins: Iterable[str],
        allow_missing: bool = False,
        protocols: Iterable[str] = ("websocket",),
        allow_same_origin: bool = True,
    ) -> None:
        self.app = app
        self.policy = OriginPolicy(
            allowed_origins,
            allow_missing=allow_missing,
            protocols=protocols,
            allow_same_origin=allow_same_origin,
        )
        self._check()

    def _check(self) -> None:
        """What one side refuses of the options both take."""


class OriginCheck(_OriginCheckBase[ASGIApp]):
    """ASGI middleware: refuse websocket handshakes (and optionally unsafe HTTP requests) from
    origins that are not allowed.

    Args:
        app: the ASGI application.
        allowed_origins: ``https://example.com``, ``https://example.com:8443``,
            ``http://localhost:*`` (any port), ``https://*.example.com`` (any subdomain),
            ``null`` (the opaque origin).
        allow_missing: allow requests without an ``Origin`` header (safe for cookie-less APIs
            only: browsers always send one on a websocket handshake).
        protocols: what is checked: ``"websocket"`` handshakes and/or ``"http"`` requests with
            an unsafe method (a CSRF check).
        allow_same_origin: also allow the request's own origin (its scheme and ``Host``; put
            `TrustedHosts` and `ProxyHeaders` outside this middleware).

    Raises:
        ValueError: an invalid pattern or ``protocols``.

    Scopes not checked (``lifespan``, safe methods) pass through untouched.
    """

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: ASGIReceive, send: ASGISend
    ) -> None:
        if not self.policy.applies(scope["type"], scope.get("method", "GET")):
            await self.app(scope, receive, send)
            return
        # Two Origin or Host lines are joined as a WSGI server joins them, so that both sides
        # decide alike: several origins are refused, several hosts match no origin. Reading
        # stops at the second line: the answer is the same for any number past one.
        headers = scope["headers"]
        origin = single_header(headers, b"origin")
        host = None
        if origin is not None and "," not in origin:
            host = single_header(headers, b"host")
        decision = self.policy.check(origin, scheme=scope.get("scheme") or "http", host=host)
        if decision.allowed:
            await self.app(scope, receive, send)
        else:
            await asgi_refuse(scope, receive, send, 403, decision.reason)


class WSGIOriginCheck(_OriginCheckBase[WSGIApplication]):
    """WSGI middleware: the ``"http"`` half of `OriginCheck`, with the same options.

    A WSGI server never hands a websocket to the application, so here ``protocols`` must
    include ``"http"`` (``"websocket"`` may be listed too, and changes nothing). The default is
    `OriginCheck`'s, ``("websocket",)``, which raises here: the same options never mean a
    check on one side and none on the other.

    Raises:
        ValueError: an invalid pattern, or ``protocols`` without ``"http"`` (the middleware
            would check nothing).
    """

    def _check(self) -> None:
        if not self.policy.check_http:
            raise ValueError(
                "WSGIOriginCheck only sees HTTP requests: pass protocols=('http',) to check "
                "unsafe requests' Origin (websockets never reach a WSGI application)"
            )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not self.policy.applies("http", environ.get("REQUEST_METHOD", "GET")):
            return self.app(environ, start_response)
        decision = self.policy.check(
            environ.get("HTTP_ORIGIN"),
            scheme=environ.get("wsgi.url_scheme") or "http",
            host=environ.get("HTTP_HOST"),
        )
        if decision.allowed:
            return self.app(environ, start_response)
        return wsgi_refuse(environ, start_response, 403, decision.reason)
