"""Types for the ASGI messages crossgate builds, one ``TypedDict`` per message with a ``Literal``
``type`` tag (ASGI 3.0, HTTP spec 2.5), and the WSGI callables from `wsgiref.types` (PEP 3333).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, Literal, NotRequired, TypeAlias, TypedDict, cast
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "ASGIApp",
    "ASGIReceive",
    "ASGISend",
    "HTTPResponseBodyEvent",
    "HTTPResponsePathsendEvent",
    "HTTPResponseStartEvent",
    "HTTPResponseZerocopysendEvent",
    "Message",
    "StartResponse",
    "WSGIApplication",
    "WSGIEnvironment",
    "as_message",
]


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
    type: Literal["http.response.pathsend"]
    path: str


class HTTPResponseZerocopysendEvent(TypedDict):
    type: Literal["http.response.zerocopysend"]
    file: object
    offset: NotRequired[int]
    count: NotRequired[int]
    more_body: NotRequired[bool]


# Mutable mappings, as in asgiref, starlette and httpx, so crossgate apps type-check beside them.
Message: TypeAlias = MutableMapping[str, Any]
ASGIReceive: TypeAlias = Callable[[], Awaitable[Message]]
ASGISend: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[MutableMapping[str, Any], ASGIReceive, ASGISend], Awaitable[None]]


def as_message(event: Mapping[str, object]) -> Message:
    """Return a typed event as the plain message ``send`` takes (no copy is made)."""
    return cast(Message, event)
