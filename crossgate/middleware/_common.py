"""What every middleware shell needs on both sides: reading headers and refusing a request."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from crossgate._answer import refuse
from crossgate.sansio.asgi_response import error_response
from crossgate.sansio.response import OptExcInfo
from crossgate.types import ASGIReceive, ASGISend, StartResponse

__all__ = ["App", "asgi_refuse", "close_result", "first_header", "wsgi_refuse"]

#: The application a middleware wraps, for constructors written once for both sides.
App = TypeVar("App")

_log = logging.getLogger("crossgate.middleware")


def first_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case, as ASGI sends names), or ``None``."""
    for key, value in headers:
        if key == name:
            return value
    return None


def close_result(result: object) -> None:
    """Call ``close()`` of an application's result, if it has one (PEP 3333)."""
    close = getattr(result, "close", None)
    if close is not None:
        close()


async def asgi_refuse(
    scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend, status: int, reason: str
) -> None:
    """Answer an ``http`` or ``websocket`` scope with ``status`` and a plain-text ``reason``."""
    # %r escapes CR, LF and other control characters: a path cannot forge a log line.
    _log.warning("refused %s %r: %d %s", scope["type"], scope.get("path", ""), status, reason)
    await refuse(scope, receive, send, status, reason)


def wsgi_refuse(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    status: int,
    reason: str,
    exc_info: OptExcInfo | None = None,
) -> list[bytes]:
    """Answer a WSGI request with ``status`` and a plain-text ``reason``; return the body."""
    _log.warning("refused %r: %d %s", environ.get("PATH_INFO", ""), status, reason)
    line, headers, body = error_response(status, reason)
    start_response(line, headers, exc_info)
    return [body]
