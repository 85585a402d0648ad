"""Types for ASGI scopes and messages, and the WSGI callables crossgate deals with.

One ``TypedDict`` per ASGI message, tagged with a ``Literal`` ``type`` so that code can narrow on
``message["type"]`` (the shape follows the ASGI specification, version 3.0, HTTP spec 2.5).
WSGI types come from `wsgiref.types` (PEP 3333).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, Literal, NotRequired, TypeAlias, TypedDict, cast
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "ASGIApp",
    "ASGIReceive",
    "ASGISend",
    "ASGIVersions",
    "HTTPDisconnectEvent",
    "HTTPRequestEvent",
    "HTTPResponseBodyEvent",
    "HTTPResponsePathsendEvent",
    "HTTPResponseStartEvent",
    "HTTPResponseZerocopysendEvent",
    "HTTPScope",
    "LifespanScope",
    "Message",
    "Scope",
    "StartResponse",
    "WSGIApplication",
    "WSGIEnvironment",
    "WebSocketScope",
    "as_message",
]


class ASGIVersions(TypedDict):
    spec_version: str
    version: Literal["2.0", "3.0"]


class _ConnectionScope(TypedDict):
    """The keys the HTTP and WebSocket scopes share."""

    asgi: ASGIVersions
    http_version: str
    scheme: str
    path: str
    raw_path: NotRequired[bytes | None]
    query_string: bytes
    root_path: str
    headers: Iterable[tuple[bytes, bytes]]
    client: NotRequired[tuple[str, int] | None]
    server: NotRequired[tuple[str, int | None] | None]
    state: NotRequired[dict[str, Any]]
    extensions: NotRequired[dict[str, dict[object, object]] | None]


class HTTPScope(_ConnectionScope):
    type: Literal["http"]
    method: str


class WebSocketScope(_ConnectionScope):
    type: Literal["websocket"]
    subprotocols: NotRequired[Iterable[str]]


class LifespanScope(TypedDict):
    type: Literal["lifespan"]
    asgi: ASGIVersions
    state: NotRequired[dict[str, Any]]


Scope: TypeAlias = HTTPScope | WebSocketScope | LifespanScope


class HTTPRequestEvent(TypedDict):
    type: Literal["http.request"]
    body: bytes
    more_body: NotRequired[bool]


class HTTPDisconnectEvent(TypedDict):
    type: Literal["http.disconnect"]


class HTTPResponseStartEvent(TypedDict):
    type: Literal["http.response.start"]
    status: int
    headers: NotRequired[Iterable[tuple[bytes, bytes]]]
    trailers: NotRequired[bool]


class HTTPResponseBodyEvent(TypedDict):
    type: Literal["http.response.body"]
    body: bytes
    more_body: NotRequired[bool]


class HTTPResponsePathsendEvent(TypedDict):
    """The ``http.response.pathsend`` extension: the server sends the file at ``path``."""

    type: Literal["http.response.pathsend"]
    path: str


class HTTPResponseZerocopysendEvent(TypedDict):
    """The ``http.response.zerocopysend`` extension: the server sends from an open file."""

    type: Literal["http.response.zerocopysend"]
    file: object
    offset: NotRequired[int]
    count: NotRequired[int]
    more_body: NotRequired[bool]


# Messages travel through ``receive`` and ``send`` as mutable mappings, the convention of asgiref,
# starlette and httpx, so that crossgate apps type-check wherever those are used. The TypedDicts
# above describe the events crossgate builds; `as_message` hands one to ``send``.
Message: TypeAlias = MutableMapping[str, Any]
ASGIReceive: TypeAlias = Callable[[], Awaitable[Message]]
ASGISend: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[MutableMapping[str, Any], ASGIReceive, ASGISend], Awaitable[None]]


def as_message(event: Mapping[str, object]) -> Message:
    """Return a typed event as the plain message ``send`` takes (no copy is made)."""
    return cast(Message, event)
