"""The state one request shares between the event loop and the worker thread running the app.

Every cross-thread hand-off costs about 100 µs (a futex wake plus a GIL switch), so this module
is built to make as few as possible:

* One lock guards everything. The loop side never blocks on it for long: the worker only holds
  it to append or take bytes.
* Either side wakes the other only when the other is actually waiting, and a wake-up carries
  everything queued since: request bytes are read ahead in bulk (bounded in bytes, see
  `crossgate.adapters._incoming_body`), and response chunks produced while the client is slower
  are coalesced into one ``send``.
* The worker blocks only when the loop is more than ``send_buffer`` bytes behind
  (back-pressure), or when it needs request bytes that have not arrived yet.

The request's phases, and which follows which, are `crossgate.sansio.exchange`'s table.
"""

from __future__ import annotations

import asyncio
import logging

from crossgate.adapters._incoming_body import GONE, IncomingBody, ReadAheadBudget
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

    The body comes in through `IncomingBody`. The loop calls `respond` (the response out),
    `expire`, `abandon` and `settle`; the worker calls `begin`, `push`, `push_file`,
    `check_connected` and `finish`.
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_failure",
        "_file_event",
        "_file_sent",
        "_late",
        "_send_buffer",
        "_sender_waiter",
        "_start",
    )

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
        # What the iterable's close() raised after a complete body (PEP 3333: close() is the
        # app's): the response is sent whole, then this is raised like any app exception.
        self._late: Exception | None = None
        self._sender_waiter: asyncio.Future[None] | None = None

    def _wake_sender(self) -> None:
        waiter = self._sender_waiter
        if waiter is not None:
            self._sender_waiter = None
            self._call_soon(waiter)

    def _detach_sender(self) -> asyncio.Future[None] | None:
        waiter, self._sender_waiter = self._sender_waiter, None
        return waiter

    # -- the worker thread --------------------------------------------------------------------

    def begin(self) -> bool:
        """Mark the request as running; False when it waited too long and got a 503 instead."""
        with self._cond:
            self.phase = next_phase(self.phase, WorkerEvent.PICKED_UP)
            if self.phase is not WorkerPhase.RUNNING:
                self._close_spooled()
                return False
            if self.body_phase is BodyPhase.RECEIVING and not self._eager:
                # The pump held back while the request was queued (see `pump`): start it now.
                # An eager pump is already reading; waking it would cost a hand-off for nothing.
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
        """The worker is done; ``failure`` aborts a response whose headers went out.

        ``start`` and ``data`` are the start event and the last bytes of the response, when the
        worker still holds them: sending them with the end of the body costs one wake-up of
        the loop instead of two. ``late`` is what the iterable's ``close()`` raised after a
        complete body: the response is still sent whole, and ``late`` handled after it.
        """
        with self._cond:
            if start is not None:
                self._start = start
            if data:
                self._chunks.append(data)
            self.phase = next_phase(self.phase, WorkerEvent.FINISHED)
            self._failure = failure
            self._late = late
            # Nobody reads the body any more (an app may answer without reading it all).
            self._drop_body()
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

    def abandon(self) -> None:
        """When the request is over: a request that never got a worker never will (it must not
        run the app later, for nobody); its buffered body and spooled file go at once."""
        with self._cond:
            self.phase = next_phase(self.phase, WorkerEvent.ENDED)
            if self.phase is WorkerPhase.ABANDONED:
                self._drop_body()
                self._close_spooled()

    async def respond(
        self, send: ASGISend, *, raise_app_exceptions: bool = True, http_version: str = "1.1"
    ) -> None:
        """Send what the worker produces until it finishes; see the module docstring.

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
                    # Whatever is still queued is not sent: the answer to a failure is
                    # decided below, from what the server has already been given.
                    break
                chunks = self._chunks
                if chunks:
                    # The bytes stay counted in `_buffered` until send() returns: bytes in the
                    # middle of a send are not with the client yet (back-pressure bound).
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
                    await self._send_batch(send, start, file_event, chunks, finished, complete)
                    complete = complete or file_event is not None or finished
                except BaseException as exc:
                    # A failing send means the connection is gone (uvicorn raises an OSError,
                    # others their own types). Stop the worker, then wait for it to close the
                    # iterable before leaving, so close() still runs exactly once.
                    send_error = exc
                    self.mark_disconnected()
                    if isinstance(exc, asyncio.CancelledError):
                        raise
            if finished:
                break
        failure, self._failure = self._failure, None
        late, self._late = self._late, None
        try:
            if failure is not None:
                await self._fail(send, failure, headers_sent, raise_app_exceptions, http_version)
            elif late is not None:
                # close() raised once the whole body was produced: the response went out
                # (the ASGI convention, as Starlette's ServerErrorMiddleware answers and then
                # raises), and the exception goes on like any other of the app's.
                await self._fail(
                    send,
                    late,
                    headers_sent,
                    raise_app_exceptions,
                    http_version,
                    complete=complete and send_error is None,
                )
            if send_error is not None and not isinstance(send_error, OSError):
                raise send_error
        finally:
            # The exception's traceback holds this frame (and, through the worker's frames, this
            # exchange with its request body): dropping the references here breaks the cycle,
            # so the body is freed as soon as the request ends, not at the next cyclic GC.
            failure = send_error = late = None

    async def _fail(
        self,
        send: ASGISend,
        failure: BaseException,
        headers_sent: bool,
        raise_app_exceptions: bool,
        http_version: str,
        *,
        complete: bool = False,
    ) -> None:
        """Answer, log and (maybe) raise a failure, knowing what reached the server.

        The app may have committed its headers on the worker, but while they wait here
        unsent the client can still get an honest error page instead of a reset.
        ``complete``: the whole response reached the server before the failure.
        """
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

    async def _send_batch(
        self,
        send: ASGISend,
        start: HTTPResponseStartEvent | None,
        file_event: Message | None,
        chunks: list[bytes],
        finished: bool,
        complete: bool,
    ) -> None:
        if start is not None:
            await send(as_message(start))
        if file_event is not None:
            # The extension event completes the response (ASGI "Path Send" and "Zero Copy
            # Send" extensions); no http.response.body follows it.
            await send(file_event)
            with self._cond:
                self._file_sent = True
                self._cond.notify()
            return
        if not complete and (chunks or finished):
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            try:
                await send({"type": "http.response.body", "body": body, "more_body": not finished})
            finally:
                if body:
                    with self._cond:
                        self._buffered -= len(body)
                        self._cond.notify()
