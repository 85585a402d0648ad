"""One `ASGIToWSGI` request's state; reading ``wsgi.input``; answering for a failed response."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from crossgate.exceptions import (
    AppProtocolError,
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
from crossgate.sansio.asgi_response import ResponseCycle, Start, error_response
from crossgate.sansio.failure import FailurePlan, Outcome, plan_failure
from crossgate.types import StartResponse, WSGIEnvironment

if TYPE_CHECKING:
    from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI

__all__ = ["WSGISide"]

_log = logging.getLogger("crossgate")


class WSGISide(Iterator[bytes]):
    """One request's four phases (`crossgate.sansio.asgi_call_state`) and other state."""

    def __init__(
        self,
        opts: ASGIToWSGI,
        loop: asyncio.AbstractEventLoop,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        length: int | None,
    ) -> None:
        self.opts = opts
        self.loop = loop
        self.environ = environ
        self.start_response = start_response
        self.remaining = length
        self.body = InputPhase.READING
        self.response = ResponsePhase.RESPONDING
        self.app = AppPhase.RUNNING
        self.server = ServerPhase.WAITING
        self.cycle = ResponseCycle(head=environ.get("REQUEST_METHOD") == "HEAD")
        self.out: list[bytes] = []
        self.violation: AppProtocolError | None = None
        self.error: Exception | None = None
        self.late_error: Exception | None = None  # raised after the complete response
        self.file_path: str | None = None
        self.file: IO[bytes] | None = None
        self.received = 0
        self.task: asyncio.Task[None] | None = None
        self.disconnected: asyncio.Future[None] | None = None
        self.piece_waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.sent = 0
        self.start: Start | None = None
        self.taken = 0
        self.ended = False
        self.done_seen = False
        self.driving = False  # inline mode: this request's thread is running the loop

    @property
    def complete(self) -> bool:
        return self.response is ResponsePhase.COMPLETE or self.response is ResponsePhase.FINISHED

    def give(self, event: Event) -> None:
        self.server = next_phase(self.server, event)

    def read_piece(self) -> bytes | None:
        """The next piece of the body, ``b""`` at its end, ``None`` if it cannot be had."""
        remaining = self.remaining
        # Never past CONTENT_LENGTH (PEP 3333): the read would block.
        size = self.opts.read_size if remaining is None else min(self.opts.read_size, remaining)
        try:
            data = self.environ["wsgi.input"].read(size) if size else b""
        except Exception as exc:  # gunicorn's NoMoreData, InvalidChunkSize; wsgiref's OSError
            _log.info("reading the request body failed: %r", exc)
            self.body = next_phase(self.body, Event.BODY_BROKEN)
            return None
        if not data:
            if remaining:
                _log.info("the request body ended %d bytes short of its Content-Length", remaining)
            self.body = next_phase(self.body, Event.BODY_BROKEN if remaining else Event.BODY_READ)
            return None if remaining else b""
        data = bytes(data[:size])  # an input that returns more than asked must not break the limit
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

    def log_late(self, exc: Exception, *, complete: bool) -> None:
        if complete:  # work after the response (Starlette BackgroundTasks) failed
            _log.error("the ASGI app failed after its response was complete", exc_info=exc)
        else:  # ASGI HTTP spec ("Disconnected Client"): not to be logged as an error
            _log.info("the ASGI app ended with %r after the client disconnected", exc)

    def plan(self, error: BaseException, *, complete: bool = False) -> FailurePlan:
        plan = plan_failure(
            error,
            app="ASGI",
            headers_sent=self.server is ServerPhase.BODY or self.server is ServerPhase.CLOSED,
            complete=complete,
            raise_app_exceptions=self.opts.raise_app_exceptions,
        )
        _log.log(plan.level, "%s", plan.message, exc_info=error if plan.traceback else None)
        return plan

    def fail(self) -> bytes:
        """Answer for an app that did not complete its response; return the error page's body."""
        found = failure_cause(self.body, self.app, violation=self.violation is not None)
        cause: BaseException
        if found is Cause.TOO_LARGE:
            cause = RequestTooLarge.for_limit(self.opts.max_body_size or 0)
        elif found is Cause.BODY_BROKEN:
            cause = PeerProtocolError(found.value)
        elif self.violation is not None:
            cause = self.violation
        elif found is Cause.APP_RAISED and self.error is not None:
            cause = self.error
        elif found is Cause.CANCELLED:  # the adapter's doing (shutdown, a grace run out)
            cause = CrossgateError("the ASGI app was cancelled before completing its response")
        else:
            cause = AppProtocolError("the ASGI app returned without completing its response")
        plan = self.plan(cause)
        if plan.propagate:
            raise cause
        if plan.outcome is Outcome.ABORT:  # else the client takes a cut body for a whole one
            raise ResponseAborted(
                "the ASGI app did not complete a response whose body had started"
            ) from cause
        line, headers, body = error_response(plan.status or 500, plan.detail)
        if self.server is ServerPhase.WAITING:
            self.start_response(line, headers)
            self.give(Event.HEADERS_GIVEN)
            return body
        # PEP 3333 ("Error Handling"): exc_info replaces the headers until body bytes went out.
        if cause.__traceback__ is None:  # made here, never raised: raise it once for a traceback
            with contextlib.suppress(BaseException):
                raise cause
        assert cause.__traceback__ is not None
        self.start_response(line, headers, (type(cause), cause, cause.__traceback__))
        return body
