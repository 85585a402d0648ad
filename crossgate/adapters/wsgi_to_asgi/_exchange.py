"""The state one request shares between the event loop and the worker thread running the app.

A cross-thread hand-off costs ~100 µs (a futex wake plus a GIL switch), so: one lock guards
everything, held only to append or take bytes; either side wakes the other only when it waits,
and a wake-up carries everything queued since (response chunks produced while the client is
slower are coalesced into one ``send``); the worker blocks only when the loop is more than
``send_buffer`` bytes behind (back-pressure) or when it needs request bytes not yet here.
The request's phases are `crossgate.sansio.exchange`'s table.
"""

from __future__ import annotations

import asyncio
import logging

from crossgate.adapters.wsgi_to_asgi._incoming_body import GONE, IncomingBody, ReadAheadBudget, wake
from crossgate.exceptions import ClientDisconnected, ResponseAborted
from crossgate.sansio.body_limit import BodyMeter
from crossgate.sansio.exchange import (
    RESPONSE_QUEUED,
    BodyPhase,
    WorkerEvent,
    WorkerPhase,
    next_phase,
)
from crossgate.sansio.failure import Outcome, plan_failure
from crossgate.sansio.response import error_events
from crossgate.types import ASGISend, HTTPResponseStartEvent, Message, as_message

__all__ = ["WorkerExchange"]

_log = logging.getLogger("crossgate")


class WorkerExchange(IncomingBody):
    """One request's hand-off between the event loop and the worker thread that runs the app.

    The body comes in through `IncomingBody`. The loop calls `respond`, `expire` and `end`; the
    worker calls `begin`, `push`, `push_file`, `check_connected` and `finish`.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        read_ahead: int,
        send_buffer: int,
        meter: BodyMeter | None = None,
        budget: ReadAheadBudget | None = None,
        eager: bool = False,
    ) -> None:
        super().__init__(loop, read_ahead=read_ahead, meter=meter, budget=budget, eager=eager)
        self._send_buffer = send_buffer
        # What the worker produced and the loop has not sent yet.
        self._start: HTTPResponseStartEvent | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._file_event: Message | None = None
        self._file_sent = False
        self._failure: BaseException | None = None
        # What the iterable's close() raised after a complete body: raised after the response.
        self._late: Exception | None = None
        self._sender_waiter: asyncio.Future[None] | None = None

    def _wake_sender(self) -> None:
        waiter = self._sender_waiter
        if waiter is not None:
            self._sender_waiter = None
            self._call_soon(waiter)

    def mark_disconnected(self) -> None:
        """The client left (``http.disconnect``, a failed send, a cancelled request)."""
        with self._cond:
            self.disconnected = True
            if self.body_phase is BodyPhase.RECEIVING:
                # The app's next read fails anyway: free the read-ahead now (it may be queued).
                self._drop_body()
                self._charge()
            self._cond.notify_all()
            waiter, self._sender_waiter = self._sender_waiter, None
        self.disconnected_event.set()
        if waiter is not None:
            wake(waiter)

    # -- the worker thread --------------------------------------------------------------------

    def begin(self) -> bool:
        """Mark the request as running; False when it waited too long and got a 503 instead."""
        with self._cond:
            self.phase = next_phase(self.phase, WorkerEvent.PICKED_UP)
            if self.phase is not WorkerPhase.RUNNING:
                self._close_spooled()
                return False
            if self.body_phase is BodyPhase.RECEIVING and not self._eager:
                # The pump held back while the request was queued; an eager one is reading.
                self._wake_body_pump()
            return True

    def push(self, start: HTTPResponseStartEvent | None, data: bytes) -> None:
        """Queue response bytes (and the start event, the first time); block while too far ahead.

        Raises:
            ClientDisconnected: the client is gone; the caller stops producing.
        """
        with self._cond:
            if self.disconnected:
                raise ClientDisconnected(GONE)
            if start is not None:
                self._start = start
            if data:
                self._chunks.append(data)
                self._buffered += len(data)
            self._wake_sender()
            while self._buffered >= self._send_buffer and not self.disconnected:
                self._cond.wait()
            if self.disconnected:
                raise ClientDisconnected(GONE)

    def push_file(self, start: HTTPResponseStartEvent, event: Message) -> None:
        """Have the loop send ``start`` then a pathsend / zerocopysend event; wait until sent.

        Raises:
            ClientDisconnected: the client is gone.
        """
        with self._cond:
            self._start, self._file_event = start, event
            self._wake_sender()
            while not self._file_sent and not self.disconnected:
                self._cond.wait()
            if not self._file_sent:
                raise ClientDisconnected(GONE)

    def finish(
        self,
        failure: BaseException | None = None,
        start: HTTPResponseStartEvent | None = None,
        data: bytes = b"",
        late: Exception | None = None,
    ) -> None:
        """The worker is done: ``failure`` is the app's, or ``start`` and ``data`` end the
        response (one wake-up of the loop, not two); ``late`` is what ``close()`` raised after
        a complete body, handled once the response is sent."""
        with self._cond:
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

    # -- the event loop -----------------------------------------------------------------------

    def expire(self, retry_after: int) -> None:
        """Queue timeout: answer 503 with ``Retry-After`` unless a worker picked the request up."""
        with self._cond:
            if self.phase is not WorkerPhase.QUEUED:
                return
            self.phase = next_phase(self.phase, WorkerEvent.EXPIRED)
            retry = ((b"retry-after", str(retry_after).encode("ascii")),)
            self._start, body = error_events(503, "no worker was free in time", extra_headers=retry)
            self._chunks = [body["body"]]
            self._drop_body()
            self._wake_sender()
        _log.warning("no worker thread became free in time; answering 503")

    def end(self) -> None:
        """When the request is over: one that never got a worker never will (its body and
        spooled file go at once); its bytes leave the read-ahead budget."""
        with self._cond:
            self.phase = next_phase(self.phase, WorkerEvent.ENDED)
            if self.phase is WorkerPhase.ABANDONED:
                self._drop_body()
                self._close_spooled()
            self._budget.used -= self._accounted
            self._accounted = 0

    async def respond(
        self, send: ASGISend, *, raise_app_exceptions: bool = True, http_version: str = "1.1"
    ) -> None:
        """Send what the worker produces until it finishes.

        Raises:
            BaseException: the app's exception, once the client has its answer, with
                ``raise_app_exceptions`` (`crossgate.sansio.failure.plan_failure` decides).
            ResponseAborted: without it, when the app failed after the headers went out.
            BaseException: whatever ``send`` raised, other than ``OSError`` (a closed
                connection), once the worker has stopped.
        """
        headers_sent = False
        complete = False
        send_error: BaseException | None = None
        while True:
            with self._cond:
                finished = self.phase in RESPONSE_QUEUED
                if finished and self._failure is not None:
                    break  # the answer is decided below, from what the server was given
                chunks = self._chunks
                if chunks:
                    # Counted in `_buffered` until send() returns (back-pressure bound).
                    self._chunks = []
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
                    # The server cancelled us (shutdown): stop the worker at its next push.
                    self.mark_disconnected()
                    raise
                continue
            if not (self.disconnected or send_error is not None):
                try:
                    if start is not None:
                        await send(as_message(start))
                    if file_event is not None:
                        # It completes the response (ASGI "Path Send", "Zero Copy Send").
                        await send(file_event)
                        complete = True
                        with self._cond:
                            self._file_sent = True
                            self._cond.notify()
                    elif not complete and (chunks or finished):
                        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                        try:
                            more = not finished
                            await send(
                                {"type": "http.response.body", "body": body, "more_body": more}
                            )
                            complete = finished
                        finally:
                            if body:
                                with self._cond:
                                    self._buffered -= len(body)
                                    self._cond.notify()
                            # Free the joined body now, not when the next batch replaces it:
                            # holding two makes every large join a fresh mmap (page faults).
                            del body
                except BaseException as exc:
                    # The connection is gone (uvicorn raises OSError, others their own): stop
                    # the worker and wait for it to close the iterable, exactly once.
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
                await self._fail(
                    send, failure, headers_sent, complete, raise_app_exceptions, http_version
                )
            if send_error is not None and not isinstance(send_error, OSError):
                raise send_error
        finally:
            # The traceback holds this frame: no cycle keeps the body until the next cyclic GC.
            failure = send_error = None

    async def _fail(
        self,
        send: ASGISend,
        failure: BaseException,
        headers_sent: bool,
        complete: bool,
        raise_app_exceptions: bool,
        http_version: str,
    ) -> None:
        """Answer, log and (maybe) raise a failure, knowing what reached the server: headers
        committed on the worker but unsent still allow an error page instead of a reset."""
        plan = plan_failure(
            failure,
            app="WSGI",
            headers_sent=headers_sent,
            complete=complete,
            client_gone=self.disconnected,
            raise_app_exceptions=raise_app_exceptions,
            http_version=http_version,
        )
        _log.log(plan.level, "%s", plan.message, exc_info=failure if plan.traceback else None)
        if plan.outcome is Outcome.ERROR_PAGE and plan.status is not None:
            start, body = error_events(plan.status, plan.detail, extra_headers=plan.headers)
            try:
                await send(as_message(start))
                await send(as_message(body))
            except OSError:
                pass  # the client left meanwhile; nothing else to tell it
        try:
            if plan.propagate:
                raise failure
            if plan.outcome is Outcome.ABORT:
                aborted = "the response failed after its headers were sent"
                raise ResponseAborted(aborted) from failure
        finally:
            del failure  # held by this frame, which the traceback holds: no cycle
