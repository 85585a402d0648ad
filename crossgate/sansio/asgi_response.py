"""ASGI ``http.response.*`` messages -> WSGI ``start_response`` arguments and body chunks. Pure."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from pathlib import PurePath
from typing import Any, NamedTuple

from crossgate.exceptions import AppProtocolError
from crossgate.sansio.headers import TOKEN_BYTES, parse_content_length
from crossgate.sansio.response import error_events

__all__ = [
    "HOP_BY_HOP",
    "Body",
    "ResponseCycle",
    "SendFile",
    "Start",
    "error_response",
    "status_line",
    "wsgi_headers",
]

# Hop-by-hop fields (RFC 9110 section 7.6.1), which PEP 3333 forbids a WSGI app to send.
HOP_BY_HOP = frozenset(
    b"connection keep-alive proxy-authenticate proxy-authorization proxy-connection te trailer "
    b"transfer-encoding upgrade".split()
)

# RFC 9110 section 5.5: CR, LF and NUL in a value would let the app split the response.
_FORBIDDEN_IN_VALUE = re.compile(rb"[\r\n\x00]")

# (name, value) as sent -> its checked WSGI pair, () for a hop-by-hop header; cleared when full.
_PAIRS: dict[tuple[bytes, bytes], tuple[str, str] | tuple[()]] = {}
_PAIRS_MAX = 1024

_PHRASES = {status.value: status.phrase for status in HTTPStatus}
_STATUS_LINES = {code: f"{code} {_PHRASES.get(code, 'Unknown')}" for code in range(200, 600)}


class Start(NamedTuple):
    """``http.response.start``: call ``start_response(status, headers)``."""

    status: str
    headers: list[tuple[str, str]]


class Body(NamedTuple):
    """``http.response.body``: ``data`` to send (maybe empty); ``more`` false ends the body."""

    data: bytes
    more: bool


class SendFile(NamedTuple):
    """``http.response.pathsend``: the body is the whole file at ``path``; the response ends."""

    path: str


# Skips the NamedTuples' Python __new__ for the Start or Body of each message.
_new_tuple = tuple.__new__


def status_line(status: object) -> str:
    """The PEP 3333 status line for an ASGI status code: ``200`` -> ``"200 OK"``.

    Raises:
        AppProtocolError: ``status`` is not an ``int`` from 200 to 599 (WSGI cannot send 1xx).
    """
    line = _STATUS_LINES.get(status) if type(status) is int else None
    if line is None:
        raise AppProtocolError(
            f"http.response.start status must be an int from 200 to 599, not {status!r}"
        )
    return line


def _bytes(raw: object) -> bytes | None:
    if type(raw) is bytes:
        return raw
    if isinstance(raw, bytes | bytearray | memoryview):
        return bytes(raw)
    return None


@functools.lru_cache(maxsize=512)
def _name(raw: bytes) -> tuple[str, bool]:
    """The WSGI name (in the app's case) and whether it is hop-by-hop."""
    if not TOKEN_BYTES.fullmatch(raw):
        raise AppProtocolError(f"invalid response header name: {raw!r}")
    return raw.decode("ascii"), raw.lower() in HOP_BY_HOP


def _pair(item: object) -> tuple[str, str] | tuple[()]:
    """One header as a WSGI pair, ``()`` when hop-by-hop."""
    raw_name: object
    raw_value: object
    try:
        raw_name, raw_value = item  # type: ignore[misc]
    except (TypeError, ValueError):
        raise AppProtocolError(
            f"a response header must be a (name, value) pair: {item!r}"
        ) from None
    name_bytes = _bytes(raw_name)
    if name_bytes is None:
        raise AppProtocolError(f"response header names must be bytes, not {raw_name!r}")
    name, hop_by_hop = _name(name_bytes)
    value_bytes = _bytes(raw_value)
    if value_bytes is None:
        raise AppProtocolError(f"response header {name!r} has a value that is not bytes")
    if _FORBIDDEN_IN_VALUE.search(value_bytes):
        raise AppProtocolError(
            f"response header {name!r} has a CR, LF or NUL in its value (header injection)"
        )
    pair: tuple[str, str] | tuple[()] = (
        () if hop_by_hop else (name, value_bytes.strip(b" \t").decode("latin-1"))
    )
    if len(_PAIRS) >= _PAIRS_MAX:
        _PAIRS.clear()
    _PAIRS[name_bytes, value_bytes] = pair
    return pair


def wsgi_headers(headers: object) -> list[tuple[str, str]]:
    """Translate ASGI response headers to PEP 3333's: latin-1, stripped, no `HOP_BY_HOP` header.

    Raises:
        AppProtocolError: not an iterable of byte pairs, a name no token, a CR, LF or NUL.
    """
    if type(headers) is not list and (
        not isinstance(headers, Iterable) or isinstance(headers, bytes | str)
    ):
        raise AppProtocolError(
            f"http.response.start headers must be an iterable of pairs, not {headers!r}"
        )
    result: list[tuple[str, str]] = []
    known = _PAIRS.get
    for item in headers:
        try:
            pair = known(item)
        except TypeError:  # unhashable: _pair says what it is
            pair = None
        if pair is None:
            pair = _pair(item)
        if pair:
            result.append(pair)
    return result


class ResponseCycle:
    """The state of one HTTP response as an ASGI app sends it: message order, Content-Length.

    ``strict`` (for ``crossgate.testing``) also demands lower-case names, nothing after the last
    message and no byte past the Content-Length (else dropped and counted in ``dropped``).
    """

    __slots__ = (
        "body_started",
        "complete",
        "content_length",
        "dropped",
        "head",
        "must_fill",
        "sent",
        "started",
        "strict",
        "zerocopysend",
    )

    def __init__(
        self, *, head: bool = False, strict: bool = False, zerocopysend: bool = False
    ) -> None:
        self.head = head
        self.strict = strict
        self.zerocopysend = zerocopysend
        self.must_fill = False
        self.started = False
        self.body_started = False
        self.complete = False
        self.content_length: int | None = None
        self.sent = 0
        self.dropped = 0

    def feed(self, message: Mapping[str, Any]) -> Start | Body | SendFile | None:
        """Check ``message`` and return what it asks for; ``None`` when it is to be ignored.

        Raises:
            AppProtocolError: a message out of order or malformed, a bad or unmet Content-Length.
        """
        if self.complete:
            if self.strict:
                kind = message.get("type") if isinstance(message, Mapping) else message
                raise AppProtocolError(f"{kind!r} sent after the response was complete")
            if self.content_length is not None and self.sent >= self.content_length:
                body = message.get("body") if isinstance(message, Mapping) else None
                if isinstance(body, bytes | bytearray | memoryview):
                    self.dropped += len(body)
            return None
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise AppProtocolError(
                f"an ASGI message must be a dict with a type: {message!r}"
            ) from None
        if kind == "http.response.body":
            if not self.started:
                raise AppProtocolError("http.response.body sent before http.response.start")
            body = message.get("body", b"")
            if type(body) is not bytes:
                if not isinstance(body, bytearray | memoryview):
                    raise AppProtocolError(
                        f"http.response.body body must be bytes, not {type(body).__name__}"
                    )
                body = bytes(body)
            more = bool(message.get("more_body", False))
            limit = self.content_length
            if limit is not None:
                room = limit - self.sent
                if len(body) > room and self.strict:
                    raise AppProtocolError(
                        f"the app sent {len(body) - room} body bytes past its Content-Length "
                        f"of {limit} (RFC 9110 section 8.6)"
                    )
                if len(body) >= room:
                    if len(body) > room:
                        self.dropped += len(body) - room
                        body = body[:room]
                    more = more and self.strict
                elif not more and self.must_fill:  # RFC 9112 section 6.3
                    raise AppProtocolError(
                        f"the app ended its body {room - len(body)} bytes short of its "
                        f"Content-Length of {limit}"
                    )
                self.sent += len(body)
            self.body_started = True
            self.complete = not more
            result: Body = _new_tuple(Body, (body, more))
            return result
        if kind == "http.response.start":
            if self.started:
                raise AppProtocolError("http.response.start sent twice")
            status = message.get("status")
            line = _STATUS_LINES.get(status) if type(status) is int else None
            headers = wsgi_headers(message.get("headers", ()))
            if self.strict:
                for name, _ in message.get("headers", ()):
                    if bytes(name) != bytes(name).lower():
                        raise AppProtocolError(f"header names must be lower-case: {name!r}")
            start: Start = _new_tuple(Start, (line or status_line(status), headers))
            lengths: list[bytes] | None = None
            for name, value in headers:
                if len(name) == 14 and name.lower() == "content-length":
                    if lengths is None:
                        lengths = []
                    lengths.append(value.encode("latin-1"))
            self.content_length = None if lengths is None else parse_content_length(lengths)
            # HEAD, 204 and 304 carry the length of a body they never send (RFC 9110 8.6).
            self.must_fill = not (self.head or status in (204, 304))
            self.started = True
            return start
        if kind == "http.response.pathsend":
            if not self.started or self.body_started:
                raise AppProtocolError(
                    "http.response.pathsend must come right after http.response.start"
                )
            path = message.get("path")
            if type(path) is not str or not PurePath(path).is_absolute():
                raise AppProtocolError(
                    f"http.response.pathsend path must be an absolute path str, not {path!r}"
                )
            self.complete = True
            return SendFile(path)
        if kind == "http.response.zerocopysend" and self.zerocopysend and self.started:
            self.body_started = True
            self.complete = not message.get("more_body", False)
            return None
        raise AppProtocolError(f"unexpected message type {kind!r} on an HTTP connection")


def error_response(
    status: int,
    message: str | None = None,
    *,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> tuple[str, list[tuple[str, str]], bytes]:
    """`crossgate.sansio.response.error_events`'s response as WSGI's ``(status, headers, body)``."""
    start, body = error_events(status, message, extra_headers=headers)
    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
    return status_line(status), pairs, body["body"]
