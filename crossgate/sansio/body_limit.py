"""Request body limits: what `crossgate.middleware.body_limit` decides, on either side. Pure.

A `BodyMeter` follows one request body as it arrives and says, by raising, when it breaks a rule:
it passes ``max_body_size`` (413), it runs past its ``Content-Length`` (400), or it ends short of
it (400). The ASGI shell feeds it the size of each ``http.request`` message; the WSGI shell feeds
it what each ``wsgi.input`` read returned and asks it how much a read may ask for.
"""

from __future__ import annotations

from crossgate.exceptions import AppProtocolError, PeerProtocolError, RequestTooLarge
from crossgate.sansio.headers import parse_content_length

__all__ = ["BodyMeter", "announces_body", "declared_length"]


def declared_length(value: bytes | str | None) -> int | None:
    """The request's ``Content-Length`` as an ``int``, or ``None`` when there is none.

    An empty value (a WSGI server may set ``CONTENT_LENGTH=""``) counts as none, as PEP 3333
    ("environ Variables") allows it to be "empty or absent".

    Raises:
        PeerProtocolError: the value is not a non-negative decimal integer (RFC 9110 section
            8.6: ``Content-Length = 1*DIGIT``); the status is 400.
    """
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip(" \t")
    if not text:
        return None
    try:
        # The one Content-Length rule (crossgate.sansio.headers): ASCII digits, and few enough
        # that int() cannot raise (CPython refuses more than 4300 with a ValueError).
        length = parse_content_length([text.encode("latin-1", "replace")])
    except AppProtocolError:
        raise PeerProtocolError(f"invalid Content-Length header: {text[:40]!r}") from None
    if length is None:  # pragma: no cover - one value always gives a length
        raise PeerProtocolError("invalid Content-Length header")
    return length


class BodyMeter:
    """Counts one request body against ``limit`` and its declared length.

    ``declared`` is the ``Content-Length`` (``None`` for a chunked or streamed body). Creating a
    meter for a declared length over ``limit`` raises at once, so the caller can refuse the
    request before the application runs. Once a rule is broken, `error` holds the exception and
    every later call raises it again: the application never gets to read on past it.

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

    def _fail(self, error: PeerProtocolError) -> PeerProtocolError:
        self.error = error
        return error

    def check(self) -> None:
        """Raise the error a previous call recorded, if any."""
        if self.error is not None:
            raise self.error

    def count(self, size: int) -> None:
        """Account for ``size`` more bytes of body.

        Raises:
            RequestTooLarge: the body is now over ``limit`` (checked first: a body both longer
                than its ``Content-Length`` and over the limit is a 413).
            PeerProtocolError: the body is now longer than its ``Content-Length`` (400). An ASGI
                server frames the body itself, so this means a broken framing; the application
                must not see bytes past the length it was promised.
        """
        self.check()
        self.received += size
        if self.received > self.limit:
            raise self._fail(RequestTooLarge.for_limit(self.limit))
        if self.declared is not None and self.received > self.declared:
            raise self._fail(
                PeerProtocolError(
                    f"request body is longer than its Content-Length of {self.declared} bytes"
                )
            )

    def finish(self) -> None:
        """The body ended (the last ``http.request`` message, or end of file on ``wsgi.input``).

        Raises:
            PeerProtocolError: it ended before its ``Content-Length`` was reached (400): the
                client lied or left, and the application must not take the truncated body for
                the whole one.
        """
        self.check()
        if self.declared is not None and self.received < self.declared:
            raise self._fail(
                PeerProtocolError(
                    f"request body ended after {self.received} of the {self.declared} bytes "
                    "its Content-Length promised"
                )
            )

    def allowance(self, size: int | None) -> int:
        """How many bytes a read of ``size`` (negative or ``None``: all) may ask the server for.

        With a ``Content-Length`` a read never asks past it (PEP 3333, "Input and Error
        Streams": the server should simulate an end of file there), so extra bytes a lying
        client sent never reach the application. Without one, a read asks for at most one byte
        more than the limit allows, which is enough to see the limit broken without buffering
        an unbounded body. ``0`` means end of body.

        Raises:
            PeerProtocolError: a rule was already broken (see `check`).
        """
        self.check()
        wanted = size if size is not None and size >= 0 else None
        if self.declared is not None:
            room = self.declared - self.received
        else:
            room = self.limit - self.received + 1
        return room if wanted is None else min(wanted, room)


def announces_body(content_length: str | None, transfer_encoding: str | None) -> bool:
    """Whether a request says a body follows: a non-zero ``Content-Length``, or any
    ``Transfer-Encoding`` (RFC 9112 section 6.3: a message body is present exactly then).

    Used to decide, before the body is read, whether a request queued for a worker needs its
    body held back; a malformed length still counts as a body, refused where it is parsed.
    """
    return bool(content_length and content_length != "0") or transfer_encoding is not None
