"""WSGI ``start_response`` semantics and their translation into ASGI ``http.response.*`` events."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from types import TracebackType
from typing import Any

from crossgate.exceptions import AppProtocolError
from crossgate.sansio.headers import encode_response_headers, parse_content_length
from crossgate.types import (
    HTTPResponseBodyEvent,
    HTTPResponsePathsendEvent,
    HTTPResponseStartEvent,
    HTTPResponseZerocopysendEvent,
)

__all__ = [
    "OptExcInfo",
    "ResponseState",
    "body_chunk",
    "error_events",
    "file_send_event",
    "parse_status",
]

# What sys.exc_info() returns: start_response's ``exc_info``.
OptExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


def parse_status(status: object) -> int:
    """Return the status code of a PEP 3333 status line such as ``"200 OK"``.

    Raises:
        AppProtocolError: not three digits from 200 to 599, a space and a reason without CR/LF/NUL.
    """
    if type(status) is not str:
        raise AppProtocolError(f"status must be a str such as '200 OK', not {status!r}")
    code = status[:3]
    if len(status) < 4 or status[3] != " " or not (code.isascii() and code.isdigit()):
        raise AppProtocolError(f"status must be three digits, a space and a reason: {status!r}")
    if "\r" in status or "\n" in status or "\x00" in status:
        raise AppProtocolError(f"status has a CR, LF or NUL in it: {status!r}")
    value = int(code)
    if not 200 <= value <= 599:
        raise AppProtocolError(f"status code must be between 200 and 599: {status!r}")
    return value


def body_chunk(chunk: object) -> bytes:
    """Return a WSGI app's body chunk as ``bytes``.

    Raises:
        AppProtocolError: ``chunk`` is not bytes-like (a ``str`` most often).
    """
    if type(chunk) is bytes:
        return chunk
    if isinstance(chunk, bytes | bytearray | memoryview):
        return bytes(chunk)
    raise AppProtocolError(
        f"the WSGI app produced a body chunk of type {type(chunk).__name__}, not bytes "
        "(PEP 3333: a response body is made of bytestrings; encode text first)"
    )


class ResponseState:
    """What ``start_response`` was told, and how much of the ``Content-Length`` promise went out."""

    __slots__ = ("committed", "content_length", "head", "headers", "sent", "status")

    def __init__(self, method: str = "GET") -> None:
        self.head = method == "HEAD"
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.committed = False
        self.sent = 0

    def start(self, status: object, headers: object, exc_info: OptExcInfo | None = None) -> None:
        """Record a ``start_response`` call.

        Raises:
            BaseException: ``exc_info``'s exception, when the headers already went out.
            AppProtocolError: a second call without ``exc_info``, or an invalid status or header.
        """
        if exc_info is not None and exc_info[1] is not None:
            if self.committed:
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.status is not None:
            raise AppProtocolError(
                "start_response() was called a second time without exc_info (PEP 3333)"
            )
        code = parse_status(status)
        encoded = encode_response_headers(headers)
        length = parse_content_length([v for n, v in encoded if n == b"content-length"])
        self.status, self.headers, self.content_length = code, encoded, length

    def commit(self) -> HTTPResponseStartEvent:
        """Mark the headers as sent and return their ``http.response.start`` event.

        Raises:
            AppProtocolError: ``start_response`` was never called.
        """
        if self.status is None:
            raise AppProtocolError(
                "the application produced a body (or returned) without calling start_response()"
            )
        self.committed = True
        return {"type": "http.response.start", "status": self.status, "headers": self.headers}

    def clamp(self, chunk: bytes) -> tuple[bytes, int, bool]:
        """Account for ``chunk``; return ``(bytes to send, bytes dropped, body complete)``."""
        limit = self.content_length
        if limit is None:
            self.sent += len(chunk)
            return chunk, 0, False
        room = limit - self.sent
        dropped = len(chunk) - room if len(chunk) > room else 0
        if dropped:
            chunk = chunk[:room]
        self.sent += len(chunk)
        return chunk, dropped, self.sent >= limit

    def shortfall(self) -> int:
        """Bytes still owed under ``Content-Length``; HEAD, 204 and 304 owe none (RFC 9110 8.6)."""
        if self.content_length is None or self.head or self.status in (204, 304):
            return 0
        return max(self.content_length - self.sent, 0)


def file_send_event(
    state: ResponseState,
    extensions: Mapping[str, Any],
    *,
    file: object,
    path: str | None,
    offset: int,
    size: int,
) -> HTTPResponsePathsendEvent | HTTPResponseZerocopysendEvent | None:
    """The pathsend or zerocopysend event for a ``wsgi.file_wrapper`` file (``path`` checked by
    the caller to name it), settling ``state``; ``None``: iterate the file instead."""
    remaining = size - offset
    if (
        state.head
        or state.committed
        or state.status is None
        or state.content_length not in (None, remaining)
    ):
        return None
    event: HTTPResponsePathsendEvent | HTTPResponseZerocopysendEvent
    if "http.response.pathsend" in extensions and offset == 0 and path is not None:
        event = {"type": "http.response.pathsend", "path": path}
    elif "http.response.zerocopysend" in extensions:
        event = {
            "type": "http.response.zerocopysend",
            "file": file,
            "offset": offset,
            "count": remaining,
            "more_body": False,
        }
    else:
        return None
    if state.content_length is None:
        state.headers.append((b"content-length", str(remaining).encode("ascii")))
        state.content_length = remaining
    state.sent = remaining
    return event


def error_events(
    status_code: int,
    message: str | None = None,
    *,
    extra_headers: tuple[tuple[bytes, bytes], ...] = (),
) -> tuple[HTTPResponseStartEvent, HTTPResponseBodyEvent]:
    """The two events of a short plain-text error response: status phrase, then ``message``."""
    text = f"{status_code} {HTTPStatus(status_code).phrase}"
    body = (text + ("\n" if message is None else f": {message}\n")).encode("utf-8")
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        *extra_headers,
    ]
    return (
        {"type": "http.response.start", "status": status_code, "headers": headers},
        {"type": "http.response.body", "body": body, "more_body": False},
    )
