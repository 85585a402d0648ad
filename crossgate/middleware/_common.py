"""What every middleware shell needs on both sides: reading headers and refusing a request.

The decisions themselves live in `crossgate.sansio`; these helpers only turn "refuse with status
S because R" into ASGI messages or a WSGI response, the same way for every middleware, so a
refusal looks alike whichever side of the migration a request lands on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, TypeVar

from crossgate.sansio.response import error_events
from crossgate.types import ASGISend, StartResponse, as_message

__all__ = ["App", "asgi_refuse", "close_result", "first_header", "wsgi_refuse"]

#: The application a middleware wraps: an ASGI app on one side, a WSGI app on the other. Each
#: middleware's constructor is written once, in a base class generic in it, for both sides.
App = TypeVar("App")

_log = logging.getLogger("crossgate.middleware")

# The ASGI extension that lets an app answer a websocket handshake with an HTTP response
# (ASGI spec, "Extensions": websocket.http.response). Without it the only refusal is a close
# before accept, which the server turns into a bare 403.
WEBSOCKET_DENIAL = "websocket.http.response"


def first_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case, as ASGI sends names), or ``None``."""
    for key, value in headers:
        if key == name:
            return value
    return None


def close_result(result: object) -> None:
    """Call ``close()`` of an application's result, if it has one.

    PEP 3333: the server (and so any middleware that stands in for it) calls ``close()`` of the
    iterable an application returned, even when its body is not sent.
    """
    close = getattr(result, "close", None)
    if close is not None:
        close()


async def asgi_refuse(
    scope: Mapping[str, Any],
    send: ASGISend,
    status: int,
    reason: str,
    *,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Answer an ``http`` or ``websocket`` scope with ``status`` and a plain-text ``reason``.

    For a websocket the denial response is used when the server offers the
    ``websocket.http.response`` extension; otherwise the handshake is closed before accept,
    which servers answer with 403 (ASGI spec, websocket "Close - send event"). The reason is
    logged at WARNING on the ``crossgate.middleware`` logger either way.
    """
    # %r escapes CR, LF and other control characters: a path cannot forge a log line.
    _log.warning("refused %s %r: %d %s", scope["type"], scope.get("path", ""), status, reason)
    start, body = error_events(status, reason, extra_headers=headers)
    if scope["type"] == "http":
        await send(as_message(start))
        await send(as_message(body))
        return
    extensions = scope.get("extensions") or {}
    if WEBSOCKET_DENIAL in extensions:
        await send({**start, "type": "websocket.http.response.start"})
        await send({**body, "type": "websocket.http.response.body"})
        return
    await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})


def wsgi_refuse(
    environ: Mapping[str, Any],
    start_response: StartResponse,
    status: int,
    reason: str,
    *,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> list[bytes]:
    """Answer a WSGI request with ``status`` and a plain-text ``reason``; return the body.

    The reason is logged at WARNING on the ``crossgate.middleware`` logger.
    """
    # %r escapes CR, LF and other control characters: a path cannot forge a log line.
    _log.warning("refused %r: %d %s", environ.get("PATH_INFO", ""), status, reason)
    start, body = error_events(status, reason, extra_headers=headers)
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", ())],
    )
    return [body["body"]]
