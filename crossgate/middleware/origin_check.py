"""`OriginCheck` (ASGI) and `WSGIOriginCheck`: refuse cross-site websockets and form posts."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any, Generic
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from crossgate.middleware._common import App, asgi_refuse, wsgi_refuse
from crossgate.sansio.headers import single_header
from crossgate.sansio.origin_check import OriginPolicy
from crossgate.types import ASGIApp, ASGIReceive, ASGISend

__all__ = ["OriginCheck", "WSGIOriginCheck"]


class _OriginCheckBase(Generic[App]):
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
        if isinstance(self, WSGIOriginCheck) and not self.policy.check_http:
            raise ValueError(
                "WSGIOriginCheck only sees HTTP requests: pass protocols=('http',) to check "
                "unsafe requests' Origin (websockets never reach a WSGI application)"
            )


class OriginCheck(_OriginCheckBase[ASGIApp]):
    """ASGI middleware: refuse websocket handshakes (and optionally unsafe HTTP requests) from
    origins that are not allowed.

    Raises:
        ValueError: an invalid pattern or ``protocols``.
    """

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: ASGIReceive, send: ASGISend
    ) -> None:
        if not self.policy.applies(scope["type"], scope.get("method", "GET")):
            await self.app(scope, receive, send)
            return
        # Joined as a WSGI server joins them: several origins are refused, several hosts match none.
        headers = scope["headers"]
        origin = single_header(headers, b"origin")
        host = single_header(headers, b"host") if origin is not None and "," not in origin else None
        decision = self.policy.check(origin, scheme=scope.get("scheme") or "http", host=host)
        if decision.allowed:
            await self.app(scope, receive, send)
        else:
            await asgi_refuse(scope, receive, send, 403, decision.reason)


class WSGIOriginCheck(_OriginCheckBase[WSGIApplication]):
    """WSGI middleware: the ``"http"`` half of `OriginCheck`, with the same options.

    Raises:
        ValueError: an invalid pattern, or ``protocols`` without ``"http"`` (nothing to check).
    """

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
