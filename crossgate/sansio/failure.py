"""What a failed response becomes: what the client gets, what is logged, and whether the
exception goes on to the server.

Pure: no threads, no asyncio, no I/O. Both adapters call `plan_failure` at the one point where
they know how far the response got (on the event loop for `WSGIToASGI`, on the WSGI thread for
`ASGIToWSGI`), so the answer and the log line always tell what the client really received.

The rules, after the ASGI convention (Starlette's ``ServerErrorMiddleware`` and uvicorn answer
500 and let the exception through) and PEP 3333 ("Error Handling"):

=====================================  ==========================  ============================
the failure                            the client gets             goes on to the server
=====================================  ==========================  ============================
the request broke a rule or a limit    its 4xx (an abort once      never: not the app's fault
(`PeerProtocolError`)                  headers went out)
the client left (`ClientDisconnected`  nothing                     never (ASGI HTTP spec,
once it is gone)                                                   "Disconnected Client")
the app raised, or broke the spec      a 500 while no header       with ``raise_app_exceptions``
(`AppProtocolError`)                   went out; an aborted        (the default): the very
                                       connection after that; the  exception, after the answer
                                       whole response when it was
                                       complete already
=====================================  ==========================  ============================

Any other `CrossgateError` is the adapter's own doing (it cancelled the app at shutdown): the
client gets the same answer, and nothing is raised. Nor is a ``SystemExit`` or
``KeyboardInterrupt`` from the app's thread raised: in an asyncio task it would stop the
server's event loop.

Where `ASGIToWSGI` raises (`wsgi_raise_point`): PEP 3333 gives an application three places to
raise from: the application call, the response iterable and ``close()``. An ASGI app that
completed its response and then raised (Starlette's ``ServerErrorMiddleware`` sends its 500
page, then re-raises: the ASGI convention) is raised from ``close()``, even when it had ended
before the server got anything: the server sends that whole response first (gunicorn writes
the last chunk, then calls ``close()``, logs "Error handling request" and drops the
connection; Sentry's and werkzeug's middleware wrap ``close()`` too), so the client gets the
app's own page, as behind an ASGI server. Raised from the call, the server's generic 500
would replace it; raised from the iterable after the last chunk, gunicorn would drop a chunked
response before its last chunk. A failure before the response was complete is raised from
the call (no header given to the server yet) or the iterable (after that). A client of
werkzeug's test client that never calls ``close()`` on its response does not see the first
kind: the price of keeping every real server's answer.

crossgate's own protocol errors (`AppProtocolError`: a ``str`` body chunk, ``start_response``
never called, a body shorter than its ``Content-Length``) count as the app's exceptions: they
are bugs in the app, and an error tracker around the adapter (Sentry) must see them with the
request they broke, as Starlette's ``ServerErrorMiddleware`` re-raises any exception.
"""

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

    ERROR_PAGE = "error page"
    """No header reached the server yet: the client gets a clean error response."""
    ABORT = "abort"
    """Headers (and maybe part of the body) went out: the connection is dropped, so a
    truncated body never looks complete."""
    COMPLETE = "complete"
    """The response was complete before the failure: the client has all of it."""
    CLIENT_GONE = "client gone"
    """The client left: nothing is sent."""


class RaisePoint(enum.Enum):
    """Where `ASGIToWSGI` raises an app's exception to the WSGI server (PEP 3333 has three)."""

    CALL = "the application call"
    """Before any header was given to the server: it answers 500 itself."""
    ITERABLE = "the response iterable"
    """After ``start_response``, before the response was complete: the server answers 500
    while no body byte went out, and drops the connection after."""
    CLOSE = "close()"
    """After a complete response: the server sends all of it first, then sees the error."""


def wsgi_raise_point(*, headers_given: bool, complete: bool) -> RaisePoint:
    """Where `ASGIToWSGI` raises an exception of the app's to the WSGI server.

    Args:
        headers_given: ``start_response`` was called (the iterable was handed over).
        complete: the app completed its response (its last body message or a pathsend)
            before it raised.

    A complete response is always delivered and the exception raised from ``close()``: see
    the module's docstring for why not from the call (the app's page would be lost) or the
    iterable (a chunked body would be cut before its last chunk).
    """
    if complete:
        return RaisePoint.CLOSE
    return RaisePoint.ITERABLE if headers_given else RaisePoint.CALL


@dataclass(frozen=True, slots=True)
class FailurePlan:
    """The decision `plan_failure` returns.

    Attributes:
        outcome: what the client gets.
        status: the status of the error page (``ERROR_PAGE`` only, else ``None``).
        detail: the message for the error page's body (the reason of a 4xx), or ``None``.
        propagate: raise the exception to the server (and any middleware around the adapter)
            once the client has its answer.
        level: the `logging` level of the log line.
        traceback: log the exception's traceback (the server will not log it).
        message: the log line, saying what the client got.
        headers: extra headers for the error page.
    """

    outcome: Outcome
    status: int | None
    detail: str | None
    propagate: bool
    level: int
    traceback: bool
    message: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


def _describe(error: BaseException) -> str:
    if isinstance(error, ProtocolError):
        return f"broke the protocol: {error}"
    return f"raised {type(error).__name__}: {error}"


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
    """Decide what a response that failed with ``error`` becomes.

    Args:
        error: the exception the request ended with.
        app: ``"WSGI"`` or ``"ASGI"``, for the log line.
        headers_sent: the response's headers left the adapter (to the server), so an error
            page can no longer replace them.
        complete: the whole response left the adapter before the failure.
        client_gone: the client has left.
        raise_app_exceptions: the adapter's option: raise the app's exceptions to the server.
        http_version: the request's HTTP version (the ASGI scope's ``http_version``), when
            the error page goes to an ASGI server.
    """
    if isinstance(error, ClientDisconnected) and client_gone:
        return FailurePlan(
            Outcome.CLIENT_GONE,
            None,
            None,
            propagate=False,
            level=logging.INFO,
            traceback=False,
            message=f"the client disconnected; the {app} app stopped ({error})",
        )
    if isinstance(error, PeerProtocolError):
        if headers_sent:
            outcome, status, got = Outcome.ABORT, None, "aborting the connection"
        else:
            outcome, status = Outcome.ERROR_PAGE, error.status_code
            got = f"answering {status}"
        return FailurePlan(
            outcome,
            status,
            str(error),
            propagate=False,
            level=logging.INFO,
            traceback=False,
            message=f"{got}: {error}",
        )
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
    # The app's own exceptions and its breaches of the spec go on; crossgate's own reasons
    # (the adapter cancelled the app at shutdown, a response it aborted) are not the app's.
    # Nor is a SystemExit or KeyboardInterrupt from a worker thread: raised in an asyncio
    # task, it would stop the server's event loop.
    propagate = (
        raise_app_exceptions
        and isinstance(error, Exception)
        and (isinstance(error, AppProtocolError) or not isinstance(error, CrossgateError))
    )
    tail = ", and the exception was raised to the server" if propagate else ""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    if propagate and outcome is Outcome.ERROR_PAGE and http_version in ("1.0", "1.1"):
        # An ASGI server drops the connection of a request whose app raised, even after a
        # complete response (uvicorn does): RFC 9112 section 9.6, "Connection: close", tells
        # a keep-alive client not to send its next request into a closing connection. Not in
        # HTTP/2, where connection-specific fields are forbidden (RFC 9113 section 8.2.2).
        headers = ((b"connection", b"close"),)
    return FailurePlan(
        outcome,
        status,
        None,
        propagate=propagate,
        # Raised on, the server logs the traceback (uvicorn "Exception in ASGI application",
        # gunicorn "Error handling request"); one more copy here would only repeat it.
        level=logging.INFO if propagate else logging.ERROR,
        traceback=not propagate,
        message=f"the {app} app {_describe(error)} {got}{tail}",
        headers=headers,
    )
