"""What a failed response becomes: what the client gets, what is logged, whether it is raised."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from crossgate.exceptions import (
    AppProtocolError,
    ClientDisconnected,
    CrossgateError,
    PeerProtocolError,
    ProtocolError,
)

__all__ = ["FailurePlan", "Outcome", "RaisePoint", "plan_failure", "wsgi_raise_point"]


class Outcome(enum.Enum):
    """What the client gets of a response that failed."""

    ERROR_PAGE = "error page"  # no header reached the server yet
    ABORT = "abort"  # headers went out: drop the connection, so a cut body never looks whole
    COMPLETE = "complete"  # the client has the whole response
    CLIENT_GONE = "client gone"  # nothing is sent


class RaisePoint(enum.Enum):
    """Where `ASGIToWSGI` raises an app's exception to the WSGI server (PEP 3333 has three)."""

    CALL = "the application call"  # no header given yet: the server answers 500 itself
    ITERABLE = "the response iterable"  # headers given, response incomplete
    CLOSE = "close()"  # complete: the server sends all of it first, then sees the error


def wsgi_raise_point(*, headers_given: bool, complete: bool) -> RaisePoint:
    """Where `ASGIToWSGI` raises an app's exception: ``close()`` once the response is complete."""
    if complete:
        return RaisePoint.CLOSE
    return RaisePoint.ITERABLE if headers_given else RaisePoint.CALL


@dataclass(frozen=True, slots=True)
class FailurePlan:
    """The decision `plan_failure` returns: the `Outcome`, the error page, the log line, and
    whether to ``propagate`` the exception to the server once the client has its answer."""

    outcome: Outcome
    status: int | None
    detail: str | None
    message: str
    propagate: bool = False
    level: int = logging.INFO
    traceback: bool = False
    headers: tuple[tuple[bytes, bytes], ...] = ()


def plan_failure(
    error: BaseException,
    *,
    app: str,
    headers_sent: bool = False,
    complete: bool = False,
    client_gone: bool = False,
    raise_app_exceptions: bool = True,
    http_version: str | None = None,
) -> FailurePlan:
    """Decide what a response that failed with ``error`` becomes, given how far it got.

    ``app`` (``"WSGI"`` or ``"ASGI"``) names the app in the log line; ``http_version`` is the
    scope's, when the error page goes to an ASGI server.
    """
    if isinstance(error, ClientDisconnected) and client_gone:
        message = f"the client disconnected; the {app} app stopped ({error})"
        return FailurePlan(Outcome.CLIENT_GONE, None, None, message)
    if isinstance(error, PeerProtocolError):
        if headers_sent:
            outcome, status, got = Outcome.ABORT, None, "aborting the connection"
        else:
            outcome, status = Outcome.ERROR_PAGE, error.status_code
            got = f"answering {status}"
        return FailurePlan(outcome, status, str(error), f"{got}: {error}")
    if complete:
        outcome, status = Outcome.COMPLETE, None
        got = "after its response was complete; the client got the whole response"
    elif client_gone:
        outcome, status = Outcome.CLIENT_GONE, None
        got = "after the client disconnected; nothing was sent"
    elif headers_sent:
        outcome, status = Outcome.ABORT, None
        got = "after the response headers were sent; the connection was aborted"
    else:
        outcome, status = Outcome.ERROR_PAGE, 500
        got = "before the response headers were sent; the client got a 500"
    # A SystemExit from a worker thread would stop the server's event loop.
    propagate = (
        raise_app_exceptions
        and isinstance(error, Exception)
        and (isinstance(error, AppProtocolError) or not isinstance(error, CrossgateError))
    )
    tail = ", and the exception was raised to the server" if propagate else ""
    if isinstance(error, ProtocolError):
        did = f"broke the protocol: {error}"
    else:
        did = f"raised {type(error).__name__}: {error}"
    headers: tuple[tuple[bytes, bytes], ...] = ()
    if propagate and outcome is Outcome.ERROR_PAGE and http_version in ("1.0", "1.1"):
        # As uvicorn drops the connection of an app that raised (RFC 9112 section 9.6); not
        # allowed in HTTP/2 (RFC 9113 section 8.2.2).
        headers = ((b"connection", b"close"),)
    return FailurePlan(
        outcome,
        status,
        None,
        f"the {app} app {did} {got}{tail}",
        propagate=propagate,
        level=logging.INFO if propagate else logging.ERROR,
        traceback=not propagate,
        headers=headers,
    )
