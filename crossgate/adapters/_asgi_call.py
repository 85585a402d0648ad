"""What the inline and shared modes of `ASGIToWSGI` share: reading the request body from
``wsgi.input``, and answering for an app that did not complete its response."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from crossgate.exceptions import (
    AppProtocolError,
    ClientDisconnected,
    RequestTooLarge,
    ResponseAborted,
)
from crossgate.sansio.asgi_response import ResponseCycle, error_response
from crossgate.types import StartResponse, WSGIEnvironment

__all__ = ["Call", "Options", "client_gone"]

_log = logging.getLogger("crossgate")


@dataclass(frozen=True, slots=True)
class Options:
    """The per-request settings of an `ASGIToWSGI` (see its docstring)."""

    read_size: int
    send_buffer: int
    max_body_size: int | None
    background_timeout: float
    disconnect_grace: float


def _exc_info(error: BaseException) -> tuple[type[BaseException], BaseException, TracebackType]:
    """``error`` as ``sys.exc_info()`` would give it, for ``start_response``'s ``exc_info``."""
    traceback = error.__traceback__
    if traceback is None:  # made here, never raised: raise it once to give it a traceback
        try:
            raise error
        except BaseException as raised:
            traceback = raised.__traceback__
    if traceback is None:  # pragma: no cover - a raised exception always has one
        raise error
    return type(error), error, traceback


def client_gone() -> ClientDisconnected:
    """The error ``send()`` raises once the client is gone (ASGI HTTP spec 2.4: an OSError)."""
    return ClientDisconnected("the client disconnected; the response cannot be sent")


class Call:
    """One request: the WSGI-side state both modes keep.

    ``read_piece`` runs on the WSGI thread; the flags it sets (``too_large``, ``body_failed``)
    and those the app side sets (``violation``, ``error``, ``cancelled``) decide the answer
    `fail` gives when the app ends without completing its response.
    """

    __slots__ = (
        "body_end",
        "body_failed",
        "cancelled",
        "closed",
        "cycle",
        "error",
        "file_wrapper",
        "headers_sent",
        "input",
        "opts",
        "received",
        "remaining",
        "start_response",
        "too_large",
        "violation",
        "wsgi_started",
    )

    def __init__(
        self,
        opts: Options,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        length: int | None,
    ) -> None:
        self.opts = opts
        self.input: Any = environ["wsgi.input"]
        self.file_wrapper: Any = environ.get("wsgi.file_wrapper")
        self.start_response = start_response
        self.remaining = length
        self.received = 0
        self.body_end = False
        self.body_failed = False
        self.too_large = False
        self.cycle = ResponseCycle()
        self.violation: AppProtocolError | None = None
        self.error: Exception | None = None
        self.cancelled = False
        self.wsgi_started = False
        self.headers_sent = False
        self.closed = False

    # -- the request body, on the WSGI thread ------------------------------------------------

    def read_piece(self) -> bytes | None:
        """Read the next piece of the request body from ``wsgi.input``.

        Returns the bytes, ``b""`` (with ``body_end`` set) once the body is over, or ``None``
        when the body cannot be had: the client left or the input failed (``body_failed``), or
        the body outgrew ``max_body_size`` (``too_large``). At most ``read_size`` bytes are read
        at a time and never past ``CONTENT_LENGTH`` (PEP 3333, "Input and Error Streams").
        """
        remaining = self.remaining
        if remaining == 0:
            self.body_end = True
            return b""
        size = self.opts.read_size if remaining is None else min(self.opts.read_size, remaining)
        try:
            data = self.input.read(size)
        except Exception as exc:
            # gunicorn raises NoMoreData (an IOError) when the client leaves mid-body and
            # InvalidChunkSize for a broken chunked body; wsgiref's socket raises OSError.
            _log.info("reading the request body failed: %r", exc)
            self.body_failed = True
            return None
        if not data:
            if remaining is None:
                self.body_end = True
                return b""
            _log.info("the request body ended %d bytes short of its Content-Length", remaining)
            self.body_failed = True
            return None
        if type(data) is not bytes:
            data = bytes(data)
        if len(data) > size:  # an input that returns more than asked must not break the limit
            data = data[:size]
        self.received += len(data)
        limit = self.opts.max_body_size
        if limit is not None and self.received > limit:
            self.too_large = True
            return None
        if remaining is not None:
            self.remaining = remaining = remaining - len(data)
            self.body_end = remaining == 0
        return data

    # -- answering for an app that did not complete its response ----------------------------

    def log_late(self, exc: Exception, *, complete: bool) -> None:
        """Log an exception the app raised once its response no longer depended on it: after
        the response was complete, or after the client left."""
        if complete:
            # Work after the response (Starlette BackgroundTasks) failed: the client has its
            # answer, but the failure must not go unseen.
            _log.error("the ASGI app failed after its response was complete", exc_info=exc)
        else:
            # ASGI HTTP spec ("Disconnected Client"): the error send() raised for a client that
            # left is not to be logged as an error.
            _log.info("the ASGI app ended with %r after the client disconnected", exc)

    def _failure(self) -> tuple[int, str | None, BaseException]:
        """The status, the client-facing message and the cause of a failed response; logged."""
        if self.too_large:
            limit = self.opts.max_body_size or 0
            error: BaseException = RequestTooLarge.for_limit(limit)
            _log.info("answering 413: %s", error)
            return 413, str(error), error
        if self.body_failed:
            error = ClientDisconnected("the request body could not be read to its end")
            _log.info("answering 400: %s", error)
            return 400, str(error), error
        if self.violation is not None:
            _log.error(
                "the ASGI app broke the protocol: %s", self.violation, exc_info=self.violation
            )
            return 500, None, self.violation
        if self.error is not None:
            _log.error("the ASGI app failed before completing its response", exc_info=self.error)
            return 500, None, self.error
        if self.cancelled:
            error = AppProtocolError("the ASGI app was cancelled before completing its response")
        else:
            error = AppProtocolError("the ASGI app returned without completing its response")
        _log.error("%s", error)
        return 500, None, error

    def fail(self) -> bytes:
        """Answer for an app that ended without completing its response; return the body.

        Before any body byte went out, the answer becomes an error response: PEP 3333 ("Error
        Handling") lets ``start_response`` replace the headers, with ``exc_info``, until then.
        After that, the connection must be dropped so that the client cannot take a truncated
        body for a whole one.

        Raises:
            ResponseAborted: body bytes already went out (the cause is chained).
        """
        status, message, cause = self._failure()
        if self.headers_sent:
            raise ResponseAborted(
                "the ASGI app did not complete a response whose body had started"
            ) from cause
        line, headers, body = error_response(status, message)
        if self.wsgi_started:
            self.start_response(line, headers, _exc_info(cause))
        else:
            self.start_response(line, headers)
            self.wsgi_started = True
        return body
