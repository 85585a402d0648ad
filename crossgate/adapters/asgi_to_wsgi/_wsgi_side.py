"""The WSGI thread's half of an `ASGIToWSGI` request: reading the request body from
``wsgi.input``, sending a pathsend's file, and answering for an app that did not complete its
response (PEP 3333, "Error Handling"). `crossgate.adapters.asgi_to_wsgi._call.AppCall` builds
the engine on it; the phases it keeps and their rules are `crossgate.sansio.asgi_call_state`'s."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

from crossgate.adapters._streams import FILE_BLOCK_SIZE
from crossgate.exceptions import (
    AppProtocolError,
    ClientDisconnected,
    CrossgateError,
    PeerProtocolError,
    RequestTooLarge,
    ResponseAborted,
)
from crossgate.sansio.asgi_call_state import (
    AppPhase,
    Cause,
    Event,
    InputPhase,
    ResponsePhase,
    ServerPhase,
    failure_cause,
    next_phase,
)
from crossgate.sansio.asgi_response import ResponseCycle, error_response
from crossgate.sansio.failure import FailurePlan, Outcome, plan_failure
from crossgate.types import StartResponse, WSGIEnvironment

__all__ = ["Options", "WSGISide", "client_gone"]

_log = logging.getLogger("crossgate")


@dataclass(frozen=True, slots=True)
class Options:
    """The per-request settings of an `ASGIToWSGI` (see its docstring)."""

    read_size: int
    send_buffer: int
    max_body_size: int | None
    background_timeout: float
    disconnect_grace: float
    raise_app_exceptions: bool = True


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


def wrap_file(call: WSGISide, file: IO[bytes], file_wrapper: Any) -> Iterable[bytes] | None:
    """The server's ``wsgi.file_wrapper`` around ``file``, whose ``close()`` also closes ``call``.

    The server recognises its own wrapper (gunicorn sends it with ``sendfile()``), so the
    wrapper itself must be the iterable; ``call.close()`` then runs from the wrapper's, which
    the server calls when done (PEP 3333). ``None`` when the wrapper takes no extra ``close``.
    """
    wrapper = file_wrapper(file, FILE_BLOCK_SIZE)
    inner = getattr(wrapper, "close", None)

    def close() -> None:
        try:
            if inner is not None:
                inner()
        finally:
            call.close()

    try:
        wrapper.close = close
    except (AttributeError, TypeError):
        return None
    result: Iterable[bytes] = wrapper
    return result


class WSGISide(ABC):
    """One request's state, and what the WSGI thread does with it.

    Four phases (`crossgate.sansio.asgi_call_state`) say where the request is: ``body`` (read
    here), ``response`` and ``app`` (moved by the app's task), ``server`` (the WSGI server's
    side). `fail` asks `failure_cause` what a response the app did not complete is blamed on.
    """

    __slots__ = (
        "app",
        "body",
        "cycle",
        "error",
        "file",
        "file_path",
        "file_wrapper",
        "input",
        "late_error",
        "opts",
        "out",
        "received",
        "remaining",
        "response",
        "server",
        "start_response",
        "violation",
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
        self.file_path: str | None = None
        self.file: IO[bytes] | None = None
        self.start_response = start_response
        self.remaining = length
        self.received = 0
        self.body = InputPhase.READING
        self.response = ResponsePhase.RESPONDING
        self.app = AppPhase.RUNNING
        self.server = ServerPhase.WAITING
        self.cycle = ResponseCycle(head=environ.get("REQUEST_METHOD") == "HEAD")
        self.violation: AppProtocolError | None = None
        self.error: Exception | None = None
        # What the app raised after its complete response, kept until close() raises it to
        # the server (raise_app_exceptions).
        self.late_error: Exception | None = None
        # The body bytes the WSGI side has to hand over.
        self.out: list[bytes] = []

    @property
    def complete(self) -> bool:
        """The app completed its response (its last body message or a pathsend)."""
        return self.response is ResponsePhase.COMPLETE or self.response is ResponsePhase.FINISHED

    def give(self, event: Event) -> None:
        """Move the server's phase on: headers given, or body bytes handed over."""
        self.server = next_phase(self.server, event)

    # -- the request body -----------------------------------------------------------------

    def read_piece(self) -> bytes | None:
        """Read the next piece of the request body from ``wsgi.input``.

        Returns the bytes, ``b""`` (the body phase `InputPhase.END`) once the body is over, or
        ``None`` when the body cannot be had: the client left or the input failed
        (`InputPhase.BROKEN`), or the body outgrew ``max_body_size`` (`InputPhase.TOO_LARGE`).
        At most ``read_size`` bytes are read at a time and never past ``CONTENT_LENGTH``
        (PEP 3333, "Input and Error Streams").
        """
        remaining = self.remaining
        if remaining == 0:
            self.body = next_phase(self.body, Event.BODY_READ)
            return b""
        size = self.opts.read_size if remaining is None else min(self.opts.read_size, remaining)
        try:
            data = self.input.read(size)
        except Exception as exc:
            # gunicorn raises NoMoreData (an IOError) when the client leaves mid-body and
            # InvalidChunkSize for a broken chunked body; wsgiref's socket raises OSError.
            _log.info("reading the request body failed: %r", exc)
            self.body = next_phase(self.body, Event.BODY_BROKEN)
            return None
        if not data:
            if remaining is None:
                self.body = next_phase(self.body, Event.BODY_READ)
                return b""
            _log.info("the request body ended %d bytes short of its Content-Length", remaining)
            self.body = next_phase(self.body, Event.BODY_BROKEN)
            return None
        if type(data) is not bytes:
            data = bytes(data)
        if len(data) > size:  # an input that returns more than asked must not break the limit
            data = data[:size]
        self.received += len(data)
        limit = self.opts.max_body_size
        if limit is not None and self.received > limit:
            self.body = next_phase(self.body, Event.BODY_TOO_LARGE)
            return None
        if remaining is not None:
            self.remaining = remaining = remaining - len(data)
            if remaining == 0:
                self.body = next_phase(self.body, Event.BODY_READ)
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

    def _cause(self) -> BaseException:
        """Why the response failed (`failure_cause`), as the exception to answer for."""
        cause = failure_cause(self.body, self.app, violation=self.violation is not None)
        if cause is Cause.TOO_LARGE:
            return RequestTooLarge.for_limit(self.opts.max_body_size or 0)
        if cause is Cause.BODY_BROKEN:
            return PeerProtocolError(cause.value)
        if self.violation is not None:
            return self.violation
        if cause is Cause.APP_RAISED and self.error is not None:
            return self.error
        if cause is Cause.CANCELLED:
            # The adapter's doing (shutdown, a grace period that ran out), not the app's bug.
            return CrossgateError("the ASGI app was cancelled before completing its response")
        return AppProtocolError("the ASGI app returned without completing its response")

    def _plan(self, error: BaseException, *, complete: bool = False) -> FailurePlan:
        """Decide (`plan_failure`) and log what a failure becomes."""
        plan = plan_failure(
            error,
            app="ASGI",
            headers_sent=self.server is ServerPhase.BODY or self.server is ServerPhase.CLOSED,
            complete=complete,
            raise_app_exceptions=self.opts.raise_app_exceptions,
        )
        _log.log(plan.level, "%s", plan.message, exc_info=error if plan.traceback else None)
        return plan

    def raise_late(self, error: Exception | None) -> None:
        """Raise to the WSGI server what the app raised after its complete response.

        Called from ``close()``: the server has sent the whole response by then (gunicorn
        writes the last chunk of a chunked body before it calls ``close()``), so the client
        has it all, and the server and the middleware around the adapter see the exception.
        """
        if error is not None:
            self._plan(error, complete=True)
            raise error

    def keep_late(self, exc: Exception) -> bool:
        """Keep an exception the app raised after its complete response for `raise_late`
        (`wsgi_raise_point`: from ``close()``, once the server sent the whole response, even
        when the app had ended before the server got anything); False when it is not to be
        raised (the option is off), cannot be (the client left or the server closed the
        response: `ResponsePhase.FINISHED`) or the response was not complete."""
        if self.response is ResponsePhase.COMPLETE and self.opts.raise_app_exceptions:
            self.late_error = exc
            return True
        return False

    def open_file(self, *, wrap: bool) -> Iterable[bytes] | None:
        """Open the file of an ``http.response.pathsend`` for the server to send.

        With ``wrap`` (the iterable is not handed to the server yet) the file goes through the
        server's ``wsgi.file_wrapper`` (PEP 3333 "Optional Platform-Specific File Handling",
        which gunicorn serves with ``sendfile()``) and that wrapper is returned. Otherwise, or
        when there is no usable wrapper, the file is kept for `file_block` and ``None`` is
        returned: the call itself is the iterable. A file that cannot be opened is the app's
        error; the iterable then yields the error page.
        """
        path = self.file_path
        if path is None:  # pragma: no cover - checked by the callers
            raise AppProtocolError("no file to send")
        self.file_path = None
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed by the wrapper, file_block or close()
        except OSError as exc:
            self.violation = AppProtocolError(f"http.response.pathsend cannot open {path!r}: {exc}")
            self.out = [self.fail()]
            return None
        if wrap and self.file_wrapper is not None:
            wrapped = wrap_file(self, file, self.file_wrapper)
            if wrapped is not None:
                return wrapped
        self.file = file
        return None

    def file_block(self, file: IO[bytes]) -> bytes | None:
        """The next block of the file being sent; ``None`` (and the file closed) at its end."""
        block = file.read(FILE_BLOCK_SIZE)
        if block:
            self.give(Event.BODY_GIVEN)
            return block
        file.close()
        self.file = None
        return None

    @abstractmethod
    def close(self) -> None:
        """Called by the WSGI server when it is done with the response (PEP 3333)."""

    def close_file(self) -> None:
        """Close the file being sent, if any (the server closed the response early)."""
        if self.file is not None:
            self.file.close()
            self.file = None

    def fail(self) -> bytes:
        """Answer for an app that ended without completing its response; return the body.

        `crossgate.sansio.failure.plan_failure` decides. With ``raise_app_exceptions`` (the
        default) the app's exception is raised to the WSGI server, which answers 500 itself
        while no body byte went out (gunicorn does, and logs it) and drops the connection
        after that. Otherwise, before any body byte went out, the answer becomes an error
        response: PEP 3333 ("Error Handling") lets ``start_response`` replace the headers,
        with ``exc_info``, until then. After that, the connection must be dropped so that the
        client cannot take a truncated body for a whole one. A request's own fault (a body
        over the limit, one that could not be read) always gets its 4xx.

        Raises:
            Exception: the app's exception, with ``raise_app_exceptions``.
            ResponseAborted: body bytes already went out (the cause is chained).
        """
        cause = self._cause()
        plan = self._plan(cause)
        if plan.propagate:
            raise cause
        if plan.outcome is Outcome.ABORT:
            raise ResponseAborted(
                "the ASGI app did not complete a response whose body had started"
            ) from cause
        line, headers, body = error_response(plan.status or 500, plan.detail)
        if self.server is ServerPhase.WAITING:
            self.start_response(line, headers)
            self.give(Event.HEADERS_GIVEN)
        else:
            self.start_response(line, headers, _exc_info(cause))
        return body
