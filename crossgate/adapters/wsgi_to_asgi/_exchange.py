"""One request between the event loop and the worker thread that runs the WSGI app (PEP 3333)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any

from crossgate.adapters._streams import ErrorStream, file_event
from crossgate.adapters.wsgi_to_asgi._incoming_body import GONE, IncomingBody
from crossgate.concurrency import set_server_loop
from crossgate.exceptions import AppProtocolError, ClientDisconnected, ResponseAborted
from crossgate.sansio.exchange import (
    RESPONSE_QUEUED,
    BodyPhase,
    WorkerEvent,
    WorkerPhase,
    next_phase,
)
from crossgate.sansio.failure import Outcome, plan_failure
from crossgate.sansio.response import OptExcInfo, ResponseState, body_chunk, error_events
from crossgate.types import (
    ASGISend,
    HTTPResponseStartEvent,
    Message,
    WSGIApplication,
    WSGIEnvironment,
    as_message,
)

__all__ = ["WorkerExchange"]

_log = logging.getLogger("crossgate")


def _clamp(state: ResponseState, chunk: bytes) -> tuple[bytes, bool]:
    """``chunk`` cut to the ``Content-Length``, and whether the body is now complete."""
    data, dropped, complete = state.clamp(chunk)
    if dropped:
        _log.warning(
            "the app sent %d bytes past its Content-Length of %d; dropped them",
            dropped,
            state.content_length,
        )
    return data, complete


_Job = tuple[contextvars.Context, WSGIApplication, WSGIEnvironment, Mapping[str, object]]


class WorkerExchange(IncomingBody):
    """The loop calls `respond`, `expire` and `end`; the worker `run`s the app."""

    _job: _Job | None = None
    _retry_after = 1

    def _wake_sender(self) -> None:
        waiter = self._sender_waiter
        if waiter is not None:
            self._sender_waiter = None
            self._call_soon(waiter)

    def prepare(
        self,
        app: WSGIApplication,
        environ: WSGIEnvironment,
        extensions: Mapping[str, object],
        retry_after: int,
    ) -> None:
        """On the loop: what `run` will call, in a copy of the request task's context."""
        self._job = (contextvars.copy_context(), app, environ, extensions)
        self._retry_after = retry_after

    def run(self) -> None:
        """On the worker: run the prepared app in its context copy (a `Pool` job)."""
        job, self._job = self._job, None
        if job is not None:
            job[0].run(self._run, *job[1:])

    def dropped_by(self, future: Future[Any]) -> None:
        """A shared executor dropped the job unrun (``shutdown(cancel_futures=True)``): 503."""
        if future.cancelled():
            self._job = None
            self.expire(self._retry_after, "the worker pool was shut down")

    def _run(
        self, app: WSGIApplication, environ: WSGIEnvironment, extensions: Mapping[str, object]
    ) -> None:
        """Run ``app``; ``extensions`` are the scope's (pathsend may send a file)."""
        with self._lock:
            self.phase = next_phase(self.phase, WorkerEvent.PICKED_UP)
            if self.phase is not WorkerPhase.RUNNING:  # it waited too long and got a 503
                self._close_spooled()
                return
            if self.body_phase is BodyPhase.RECEIVING and not self._eager:
                self._wake_body_pump()  # it held back while the request was queued
        try:
            self._run_app(app, environ, extensions)
        except BaseException as exc:  # pragma: no cover - a crossgate bug must not hang
            _log.critical("crossgate failed while running a request", exc_info=exc)
            self.finish(exc)

    def _run_app(
        self, app: WSGIApplication, environ: WSGIEnvironment, extensions: Mapping[str, object]
    ) -> None:
        set_server_loop(self.loop)
        state = ResponseState(environ["REQUEST_METHOD"])
        errors: ErrorStream = environ["wsgi.errors"]

        def write(data: bytes) -> bool:
            """PEP 3333's ``write()``, and each chunk of the iterable; True once complete."""
            if type(data) is not bytes:
                data = body_chunk(data)
            if not data:
                # PEP 3333: no headers for an empty chunk; a long poll learns the client left.
                if self.disconnected:
                    raise ClientDisconnected(GONE)
                return False
            data, complete = _clamp(state, data)
            self.push(None if state.committed else state.commit(), data)
            return complete

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Callable[[bytes], object]:
            state.start(status, headers, exc_info)
            return write

        iterable: Iterable[bytes] | None = None
        failure: BaseException | None = None
        late: Exception | None = None
        tail = b""
        try:
            iterable = app(environ, start_response)
            if type(iterable) is list or type(iterable) is tuple:
                # The whole body goes out with the end of the response: one wake-up of the loop.
                try:
                    tail = b"".join(iterable)
                except TypeError:  # body_chunk raises AppProtocolError for a chunk not bytes
                    tail = b"".join([body_chunk(chunk) for chunk in iterable])
                tail, _ = _clamp(state, tail)
            elif (event := file_event(iterable, state, extensions)) is not None:
                self.push_file(state.commit(), event)
            else:
                for chunk in iterable:
                    if write(chunk):
                        break
        except BaseException as exc:
            failure = exc
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:
                    if failure is None:
                        late = exc  # sent whole, then raised (as ASGIToWSGI's close() may)
                    else:  # the app's first failure is the one answered
                        _log.exception("the WSGI iterable's close() raised")
            errors.flush()
        if failure is None and (short := state.shortfall()):
            failure = AppProtocolError(f"the app sent {short} bytes fewer than its Content-Length")
        try:
            if failure is None:
                try:
                    start = None if state.committed else state.commit()
                    self.finish(start=start, data=tail, late=late)
                    return
                except AppProtocolError as exc:  # start_response() was never called
                    failure = exc
            if late is not None:
                _log.error("the WSGI iterable's close() raised", exc_info=late)
            self.finish(failure)  # the loop decides, knowing whether the headers went out
        finally:
            # The traceback holds this frame: no cycle keeps the request until the next GC.
            failure = late = None

    def push(self, start: HTTPResponseStartEvent | None, data: bytes) -> None:
        """Queue response bytes (and the start event); block while too far ahead of the client."""
        with self._lock:
            if self.disconnected:
                raise ClientDisconnected(GONE)
            if start is not None:
                self._start = start
            if data:
                self._chunks.append(data)
                self._buffered += len(data)
            self._wake_sender()
            while self._buffered >= self._send_buffer and not self.disconnected:
                self._wait()
            if self.disconnected:
                raise ClientDisconnected(GONE)

    def push_file(self, start: HTTPResponseStartEvent, event: Message) -> None:
        """Have the loop send ``start`` then a pathsend / zerocopysend event; wait until sent."""
        with self._lock:
            self._start, self._file_event = start, event
            self._wake_sender()
            while not self._file_sent and not self.disconnected:
                self._wait()
            if not self._file_sent:
                raise ClientDisconnected(GONE)

    def finish(
        self,
        failure: BaseException | None = None,
        start: HTTPResponseStartEvent | None = None,
        data: bytes = b"",
        late: Exception | None = None,
    ) -> None:
        """The worker is done: with ``failure``, or with the end of the response in one wake-up."""
        with self._lock:
            if start is not None:
                self._start = start
            if data:
                self._chunks.append(data)
            self.phase = next_phase(self.phase, WorkerEvent.FINISHED)
            self._failure = failure
            self._late = late
            self._drop_body()  # an app may answer without reading the whole body
            self._close_spooled()
            self._wake_sender()

    def expire(self, retry_after: int, reason: str = "no worker was free in time") -> None:
        """Answer 503 with ``Retry-After`` and ``reason`` unless a worker picked the request up
        (a queue timeout, or an executor that dropped the job)."""
        with self._lock:
            if self.phase is not WorkerPhase.QUEUED:
                return
            self.phase = next_phase(self.phase, WorkerEvent.EXPIRED)
            retry = ((b"retry-after", str(retry_after).encode("ascii")),)
            self._start, body = error_events(503, reason, extra_headers=retry)
            self._chunks = [body["body"]]
            self._drop_body()
            self._wake_sender()
        _log.warning("%s; answering 503", reason)

    def end(self) -> None:
        """The request is over: free what a never-run request holds; leave the budget."""
        with self._lock:
            self.phase = next_phase(self.phase, WorkerEvent.ENDED)
            if self.phase is WorkerPhase.ABANDONED:
                self._drop_body()
                self._close_spooled()
            self._budget.used -= self._accounted
            self._accounted = 0

    async def respond(
        self, send: ASGISend, raise_app_exceptions: bool = True, http_version: str = "1.1"
    ) -> None:
        """Send what the worker produces; then answer a failure as `plan_failure` decides."""
        headers_sent = complete = False
        send_error: BaseException | None = None
        while True:
            with self._lock:
                finished = self.phase in RESPONSE_QUEUED
                if finished and self._failure is not None:
                    break  # headers queued but unsent still allow an error page
                chunks = self._chunks
                if chunks:
                    self._chunks = []  # still in `_buffered` until send() returns
                start = None
                if not headers_sent and self._start is not None:
                    start, headers_sent = self._start, True
                file_event, self._file_event = self._file_event, None
                waiter = None
                if not (chunks or start or file_event or finished):
                    self._sender_waiter = waiter = self.loop.create_future()
            if waiter is not None:
                try:
                    await waiter
                except asyncio.CancelledError:
                    self.mark_disconnected()  # server shutdown: stop the worker at its next push
                    raise
                continue
            if not (self.disconnected or send_error is not None):
                try:
                    if start is not None:
                        await send(as_message(start))
                    if file_event is not None:
                        await send(file_event)  # it completes the response (ASGI "Path Send")
                        complete = True
                        with self._lock:
                            self._file_sent = True
                            self._notify()
                    elif not complete and (chunks or finished):
                        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                        try:
                            more = not finished
                            await send(
                                {"type": "http.response.body", "body": body, "more_body": more}
                            )
                            complete = finished
                        finally:
                            if body and not finished:  # else no worker waits on the buffer
                                with self._lock:
                                    self._buffered -= len(body)
                                    self._notify()
                            # Holding two joined bodies makes every large join a fresh mmap.
                            del body
                except BaseException as exc:
                    # The connection is gone: stop the worker, which closes the iterable once.
                    send_error = exc
                    self.mark_disconnected()
                    if isinstance(exc, asyncio.CancelledError):
                        raise
            if finished:
                break
        # A `late` failure is raised after the whole response, as Starlette's middleware does.
        failure = self._failure if self._failure is not None else self._late
        complete = complete and self._failure is None and send_error is None
        self._failure = self._late = None
        try:
            if failure is not None:
                plan = plan_failure(
                    failure,
                    app="WSGI",
                    headers_sent=headers_sent,
                    complete=complete,
                    client_gone=self.disconnected,
                    raise_app_exceptions=raise_app_exceptions,
                    http_version=http_version,
                )
                exc_info = failure if plan.traceback else None
                _log.log(plan.level, "%s", plan.message, exc_info=exc_info)
                if plan.outcome is Outcome.ERROR_PAGE and plan.status is not None:
                    page = error_events(plan.status, plan.detail, extra_headers=plan.headers)
                    with contextlib.suppress(OSError):  # the client left meanwhile
                        for event in page:
                            await send(as_message(event))
                if plan.propagate:
                    raise failure
                if plan.outcome is Outcome.ABORT:
                    aborted = "the response failed after its headers were sent"
                    raise ResponseAborted(aborted) from failure
            if send_error is not None and not isinstance(send_error, OSError):
                raise send_error
        finally:
            # The traceback holds this frame: no cycle keeps the body until the next cyclic GC.
            failure = send_error = exc_info = None
