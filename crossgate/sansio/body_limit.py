"""Request body limits: what `crossgate.middleware.body_limit` and the adapters decide. Pure."""

from __future__ import annotations

from crossgate.exceptions import AppProtocolError, PeerProtocolError, RequestTooLarge
from crossgate.sansio.headers import parse_content_length

__all__ = ["HTTP1_VERSIONS", "BodyMeter", "announces_body", "declared_length", "has_no_body"]

HTTP1_VERSIONS = frozenset({"1.0", "1.1"})
"""The scope ``http_version`` values of HTTP/1, which frames every request body."""


def declared_length(value: bytes | str | None) -> int | None:
    """The request's ``Content-Length`` as an ``int``; ``None`` when absent or empty.

    Raises:
        PeerProtocolError: the value is not ``1*DIGIT`` (RFC 9110 section 8.6); 400.
    """
    text = (value.decode("latin-1") if isinstance(value, bytes) else value or "").strip(" \t")
    if not text:
        return None
    try:
        return parse_content_length([text.encode("latin-1", "replace")])
    except AppProtocolError:
        raise PeerProtocolError(f"invalid Content-Length header: {text[:40]!r}") from None


class BodyMeter:
    """Counts one request body against ``limit`` and its ``declared`` length. Once a rule is
    broken, `error` holds the exception and every later call raises it again.

    Raises:
        RequestTooLarge: from the constructor, when ``declared`` is over ``limit``.
    """

    __slots__ = ("declared", "error", "limit", "received")

    def __init__(self, limit: int, declared: int | None) -> None:
        if limit < 0:
            raise ValueError(f"max_body_size must be 0 or more, not {limit}")
        self.limit = limit
        self.declared = declared
        self.received = 0
        self.error: PeerProtocolError | None = None
        if declared is not None and declared > limit:
            self.error = RequestTooLarge.for_limit(limit)
            raise self.error

    def check(self) -> None:
        """Raise the error a previous call recorded, if any."""
        if self.error is not None:
            raise self.error

    def count(self, size: int) -> None:
        """Account for ``size`` more bytes of body.

        Raises:
            RequestTooLarge: the body is now over ``limit`` (checked first).
            PeerProtocolError: the body is now longer than its ``Content-Length`` (400).
        """
        self.check()
        self.received += size
        if self.received > self.limit:
            self.error = RequestTooLarge.for_limit(self.limit)
            raise self.error
        if self.declared is not None and self.received > self.declared:
            self.error = PeerProtocolError(
                f"request body is longer than its Content-Length of {self.declared} bytes"
            )
            raise self.error

    def finish(self) -> None:
        """The body ended.

        Raises:
            PeerProtocolError: short of its ``Content-Length`` (400).
        """
        self.check()
        if self.declared is not None and self.received < self.declared:
            self.error = PeerProtocolError(
                f"request body ended after {self.received} of the {self.declared} bytes "
                "its Content-Length promised"
            )
            raise self.error

    def allowance(self, size: int | None) -> int:
        """How many bytes a read of ``size`` (negative or ``None``: all) may ask for: up to the
        ``Content-Length`` (PEP 3333), else one byte past the limit; ``0`` at the end.

        Raises:
            PeerProtocolError: a rule was already broken (see `check`).
        """
        self.check()
        end = self.limit + 1 if self.declared is None else self.declared
        room = end - self.received
        return room if size is None or size < 0 else min(size, room)


def announces_body(content_length: str | None, transfer_encoding: str | None) -> bool:
    """Whether a request says a body follows: a non-zero ``Content-Length``, or any
    ``Transfer-Encoding`` (RFC 9112 section 6.3); a malformed length counts as a body."""
    return bool(content_length and content_length != "0") or transfer_encoding is not None


def has_no_body(
    content_length: str | None, transfer_encoding: str | None, http_version: str
) -> bool:
    """Whether a request certainly has no body: an HTTP/1 request that `announces_body` not
    (RFC 9112 section 6.3). HTTP/2 and HTTP/3 may send one without either header."""
    return http_version in HTTP1_VERSIONS and not announces_body(content_length, transfer_encoding)
