"""crossgate's exceptions: one root, `CrossgateError`, and a `ProtocolError` that says who broke
the rules, after h11: the application (`AppProtocolError`) or the request (`PeerProtocolError`).
"""

from __future__ import annotations

__all__ = [
    "AppProtocolError",
    "ClientDisconnected",
    "CrossgateError",
    "PeerProtocolError",
    "ProtocolError",
    "RequestTooLarge",
    "ResponseAborted",
]


class CrossgateError(Exception):
    """The root of every exception crossgate raises on purpose."""


class ProtocolError(CrossgateError):
    """A rule of PEP 3333, the ASGI spec or HTTP was broken; ``status_code`` is the HTTP status
    the adapter answers with when it still can."""

    status_code: int = 500

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code


class AppProtocolError(ProtocolError):
    """The application broke PEP 3333 or the ASGI spec (a bad status line, a header with a
    newline in it, ``start_response`` never called); the client gets a 500, the error is logged.
    """


class PeerProtocolError(ProtocolError):
    """The request broke the protocol or a configured limit (too many headers, a body over
    ``max_body_size``); the client gets the 4xx the error carries."""

    status_code = 400


class RequestTooLarge(PeerProtocolError):
    """The request body is larger than ``max_body_size``; the client gets a 413."""

    status_code = 413

    @classmethod
    def for_limit(cls, limit: int) -> RequestTooLarge:
        """The error for a body over ``limit`` bytes, with the message every adapter uses."""
        return cls(f"request body is larger than {limit} bytes")


class ClientDisconnected(CrossgateError, OSError):
    """The client went away: raised by ``wsgi.input`` reads that can no longer be satisfied. An
    `OSError`, so code that handles a broken socket (as under gunicorn) handles this too."""


class ResponseAborted(CrossgateError):
    """The response failed after its headers went out: raised to the ASGI server, which drops
    the connection, so a truncated body never looks complete. The cause is chained."""
