"""The state one request shares between the event loop and the worker thread running the app.

Every cross-thread hand-off costs about 100 µs (a futex wake plus a GIL switch), so this module
is built to make as few as possible:

* One lock guards everything. The loop side never blocks on it for long: the worker only holds
  it to append or take bytes.
* Either side wakes the other only when the other is actually waiting, and a wake-up carries
  everything queued since: request bytes are read ahead in bulk (bounded in bytes), and
  response chunks produced while the client is slower are coalesced into one ``send``.
* The worker blocks only when the loop is more than ``send_buffer`` bytes behind
  (back-pressure), or when it needs request bytes that have not arrived yet.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import IO

from crossgate.exceptions import (
    ClientDisconnected,
    PeerProtocolError,
    ResponseAborted,
)
from crossgate.sansio.body_limit import BodyMeter
from crossgate.sansio.failure import Outcome, plan_failure
from crossgate.sansio.response import error_events
from crossgate.types import ASGIReceive, ASGISend, HTTPResponseStartEvent, Message, as_message

__all__ = ["Exchange", "ReadAheadBudget", "RequestBody"]

_log = logging.getLogger("crossgate")


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ReadAheadBudget:
    """Request bytes buffered ahead of the apps, counted across the requests of one event loop.

    ``read_ahead`` bounds one request; this bounds them all, so that many uploads at once (or
    a storm of clients that announce a large body and leave) cannot each hold ``read_ahead``
    bytes. Past the limit, requests are read at the app's pace only: the pump reads what a
    waiting ``read()`` needs, and the server keeps the rest, with back-pressure to the client.

    Only its event loop's thread changes it (see `Exchange._charge`), so it needs no lock, and
    the worker's reads, which only shrink their request's buffer, never touch it.
    """

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def exhausted(self) -> bool:
        return self.used >= self.limit


class Exchange:
    """Request body in, response out, for one request; see the module docstring."""

    __slots__ = (
        "_body_waiter",
        "_sender_waiter",
        "accounted",
        "body",
        "body_complete",
        "body_error",
        "body_len",
        "body_pos",
        "body_wanted",
        "budget",
        "buffered",
        "chunks",
        "cond",
        "disconnected",
        "disconnected_event",
        "eager",
        "failure",
        "file_event",
        "file_sent",
        "finished",
        "late",
        "loop",
        "meter",
        "read_ahead",
        "received",
        "send_buffer",
        "spooled",
        "start",
        "started",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        read_ahead: int,
        send_buffer: int,
        meter: BodyMeter | None = None,
        budget: ReadAheadBudget | None = None,
    ) -> None:
        self.loop = loop
        self.budget = budget if budget is not None else ReadAheadBudget(read_ahead)
        # The buffered bytes this request counts in `budget` (see `_charge`).
        self.accounted = 0
        # max_body_size: the sans-IO meter decides when the body breaks the limit.
        self.meter = meter
        self.cond = threading.Condition(threading.Lock())
        self.read_ahead = read_ahead
        self.send_buffer = send_buffer
        self.disconnected = False
        self.disconnected_event = threading.Event()
        # Request body: the messages' bytes objects received but not yet read by the app, kept
        # as they came so that a read the size of a message hands that object over uncopied.
        # body_pos is how much of body[0] was read already; body_len counts unread bytes.
        self.body: deque[bytes] = deque()
        self.body_len = 0
        self.body_pos = 0
        self.body_complete = False
        self.spooled: IO[bytes] | None = None
        self.body_error: PeerProtocolError | None = None
        self.received = 0
        # How many buffered bytes the waiting worker needs; 0 when it is not waiting.
        self.body_wanted = 0
        self._body_waiter: asyncio.Future[None] | None = None
        # Response: what the worker produced and the loop has not sent yet.
        self.start: HTTPResponseStartEvent | None = None
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.file_event: Message | None = None
        self.file_sent = False
        self.finished = False
        self.failure: BaseException | None = None
        # What the iterable's close() raised after a complete body (PEP 3333: close() is the
        # app's): the response is sent whole, then this is raised like any app exception.
        self.late: Exception | None = None
        self.started: bool | None = None  # None: queued, True: running, False: expired
        # Read ahead before a worker starts (`pump`): set when a worker was free to take it.
        self.eager = False
        self._sender_waiter: asyncio.Future[None] | None = None

    # -- called with the lock held -------------------------------------------------------------

    def _drop_body(self) -> None:
        """Let go of every buffered request byte (the budget learns of it in `_charge`)."""
        self.body.clear()
        self.body_len = self.body_pos = 0

    def _charge(self) -> None:
        """On the loop: bring the shared budget up to date with what this request buffers.

        Reads on the worker thread only shrink ``body_len``; the loop settles the difference
        here, when it feeds a message or decides whether to read ahead.
        """
        delta = self.body_len - self.accounted
        if delta:
            self.budget.used += delta
            self.accounted = self.body_len

    def settle(self) -> None:
        """On the loop, when the request is over: take this request out of the budget."""
        with self.cond:
            self.budget.used -= self.accounted
            self.accounted = 0

    # -- called on the worker thread, with the lock held ------------------------------------

    def _wake_sender(self) -> None:
        waiter = self._sender_waiter
        if waiter is not None:
            self._sender_waiter = None
            self._call_soon(waiter)

    def _wake_body_pump(self) -> None:
        waiter = self._body_waiter
        if waiter is not None:
            self._body_waiter = None
            self._call_soon(waiter)

    def _call_soon(self, waiter: asyncio.Future[None]) -> None:
        try:
            self.loop.call_soon_threadsafe(_wake, waiter)
        except RuntimeError:
            # The loop is closed: the server is gone, and so is the client.
            self.disconnected = True

    # -- called on the worker thread ----------------------------------------------------------

    def begin(self) -> bool:
        """Mark the request as running; False when it waited too long and got a 503 instead."""
        with self.cond:
            if self.started is False:
                return False
            self.started = True
            if not (self.body_complete or self.eager):
                # The pump held back while the request was queued (see `pump`): start it now.
                # An eager pump is already reading; waking it would cost a hand-off for nothing.
                self._wake_body_pump()
            return True

    def abandon(self) -> bool:
        """On the loop, when the request is over: True if no worker ever picked it up.

        A request cancelled or expired while queued must not run the app later, for nobody;
        its buffered body goes at once.
        """
        with self.cond:
            if self.started is None:
                self.started = False
            if self.started is False:
                self._drop_body()
            return self.started is False

    def push(self, start: HTTPResponseStartEvent | None, data: bytes) -> None:
        """Queue response bytes (and the start event, the first time); block while too far ahead.

        Raises:
            ClientDisconnected: the client is gone; the caller stops producing.
        """
        with self.cond:
            if self.disconnected:
                raise ClientDisconnected("the client disconnected")
            if start is not None:
                self.start = start
            if data:
                self.chunks.append(data)
                self.buffered += len(data)
            self._wake_sender()
            while self.buffered >= self.send_buffer and not self.disconnected:
                self.cond.wait()
            if self.disconnected:
                raise ClientDisconnected("the client disconnected")

    def check_connected(self) -> None:
        """Raise `ClientDisconnected` when the client is gone (a read of one flag, no lock).

        Raises:
            ClientDisconnected: the client is gone; the caller stops producing.
        """
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")

    def push_file(self, start: HTTPResponseStartEvent, event: Message) -> None:
        """Have the loop send ``start`` then a pathsend / zerocopysend event; wait until sent.

        Raises:
            ClientDisconnected: the client is gone.
        """
        with self.cond:
            self.start, self.file_event = start, event
            self._wake_sender()
            while not self.file_sent and not self.disconnected:
                self.cond.wait()
            if not self.file_sent:
                raise ClientDisconnected("the client disconnected")

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
        with self.cond:
            if start is not None:
                self.start = start
            if data:
                self.chunks.append(data)
            self.finished = True
            self.failure = failure
            self.late = late
            # Nobody reads the body any more (an app may answer without reading it all).
            self._drop_body()
            self._wake_sender()

    def finish_with(self, start: HTTPResponseStartEvent, body: bytes) -> None:
        """Replace whatever was queued by a complete response (an error page)."""
        with self.cond:
            self.start = start
            self.chunks = [body]
            self.finished = True
            self._drop_body()
            self._wake_sender()

    # -- called on the event loop -------------------------------------------------------------

    def mark_disconnected(self) -> None:
        with self.cond:
            self.disconnected = True
            if not self.body_complete:
                # The body will never be whole, so the app's next read raises
                # ClientDisconnected anyway: let go of the bytes read ahead now, not when the
                # app gets around to failing (it may still be queued for a worker).
                self._drop_body()
                self._charge()
            self.cond.notify_all()
            waiter, self._sender_waiter = self._sender_waiter, None
        self.disconnected_event.set()
        if waiter is not None:
            _wake(waiter)

    def expire(self, start: HTTPResponseStartEvent, body: bytes) -> None:
        """Queue timeout: answer ``start``/``body`` unless a worker picked the request up."""
        with self.cond:
            if self.started is not None:
                return
            self.started = False
        _log.warning("no worker thread became free in time; answering 503")
        self.finish_with(start, body)

    def feed(self, message: Message) -> bool:
        """Add an ``http.request`` message's body; return True when the body is complete.

        A message that breaks ``max_body_size`` is not added, not even the part below the
        limit: the body is refused (`body_error`), and the app must never read past the limit.
        """
        data: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        with self.cond:
            self.received += len(data)
            if data and self.meter is not None:
                try:
                    self.meter.count(len(data))
                except PeerProtocolError as exc:
                    self.body_error = exc
                    self.body_complete = True
                    self.cond.notify()
                    return True
            # Once the app is done (or will never run), nobody reads the body: keep nothing.
            if data and not (self.finished or self.started is False):
                size = len(data)
                self.body.append(data)
                self.body_len += size
                # `_charge`, inlined: this runs for every message of every upload.
                self.budget.used += size
                self.accounted += size
            if not more:
                self.body_complete = True
            if self.body_wanted and (self.body_len >= self.body_wanted or not more):
                self.cond.notify()
        return not more

    async def pump(self, receive: ASGIReceive) -> None:
        """Read the rest of the body ahead of the app, then watch for ``http.disconnect``.

        One task does both because ASGI gives one ``receive`` per request, and a pending
        ``receive`` is how a disconnect is noticed while the app is still producing.
        """
        loop = self.loop
        while True:
            if not self.body_complete:
                with self.cond:
                    # Bounded in bytes even while the worker waits: it may take the worker
                    # milliseconds to get the GIL back, and receive() can deliver a lot in
                    # that time. Only a read larger than the read-ahead lifts the bound.
                    # Nothing is read ahead while the request waits in the queue for a worker:
                    # hundreds of queued uploads would each hold `read_ahead` bytes (the server
                    # holds the rest, with back-pressure to the client). When a worker was free
                    # (`eager`), reading on while it starts saves the app a wait.
                    ahead = 0
                    if self.started or self.eager:
                        self._charge()
                        if not self.budget.exhausted():
                            ahead = self.read_ahead
                    full = self.body_len >= max(ahead, self.body_wanted)
                    if full:
                        self._body_waiter = waiter = loop.create_future()
                if full:
                    await waiter
                    continue
            message = await receive()
            kind = message["type"]
            if kind == "http.disconnect":
                self.mark_disconnected()
                return
            if kind == "http.request" and not self.body_complete:
                self.feed(message)
                if self.body_error is not None:
                    return
            # Held across the next wait, this reference would keep the message's bytes alive
            # after the app has read them, one message per request.
            del message

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
            with self.cond:
                if self.finished and self.failure is not None:
                    # Whatever is still queued is not sent: the answer to a failure is
                    # decided below, from what the server has already been given.
                    break
                chunks = self.chunks
                if chunks:
                    # The bytes stay counted in `buffered` until send() returns: bytes in the
                    # middle of a send are not with the client yet (back-pressure bound).
                    self.chunks = []
                start = None
                if not headers_sent and self.start is not None:
                    start, headers_sent = self.start, True
                file_event, self.file_event = self.file_event, None
                finished = self.finished
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
        failure, self.failure = self.failure, None
        late, self.late = self.late, None
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
            with self.cond:
                self.file_sent = True
                self.cond.notify()
            return
        if not complete and (chunks or finished):
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            try:
                await send({"type": "http.response.body", "body": body, "more_body": not finished})
            finally:
                if body:
                    with self.cond:
                        self.buffered -= len(body)
                        self.cond.notify()


class RequestBody:
    """``wsgi.input`` in stream mode: reads pull from the bytes the loop reads ahead.

    ``read(n)``, ``read()``, ``readline(limit)``, ``readlines(hint)`` and iteration behave as on
    a binary file (PEP 3333, "Input and Error Streams"); the stream ends where the body ends.

    Raises (from every read):
        ClientDisconnected: the client left before sending the bytes asked for.
        RequestTooLarge: the body passed ``max_body_size``; no byte past it is ever returned.
    """

    __slots__ = ("_x",)

    def __init__(self, exchange: Exchange) -> None:
        self._x = exchange

    def _wait_for(self, size: int) -> None:
        """With the lock held: wait until ``size`` bytes are buffered or the body has ended."""
        x = self._x
        while x.body_len < size and not x.body_complete:
            if x.disconnected:
                raise ClientDisconnected("the client disconnected before sending the whole body")
            x.body_wanted = size
            x._wake_body_pump()
            x.cond.wait()
        x.body_wanted = 0
        if x.body_len < size and x.body_error is not None:
            raise x.body_error

    def _take(self, size: int) -> bytes:
        """With the lock held: remove and return up to ``size`` buffered bytes."""
        x = self._x
        body = x.body
        pieces: list[bytes] = []
        wanted = min(size, x.body_len)
        x.body_len -= wanted
        while wanted:
            first = body[0]
            pos = x.body_pos
            available = len(first) - pos
            if available <= wanted:
                pieces.append(first if pos == 0 else first[pos:])
                body.popleft()
                x.body_pos = 0
                wanted -= available
            else:
                pieces.append(first[pos : pos + wanted])
                x.body_pos = pos + wanted
                wanted = 0
        if x._body_waiter is not None and x.body_len < x.read_ahead // 2:
            x._wake_body_pump()
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(pieces)

    def _find_newline(self, limit: int) -> int:
        """With the lock held: bytes up to and including the first newline, or -1."""
        x = self._x
        offset = 0
        pos = x.body_pos
        for chunk in x.body:
            end = chunk.find(b"\n", pos)
            if end >= 0:
                found = offset + end - pos + 1
                return found if found <= limit else -1
            offset += len(chunk) - pos
            if offset >= limit:
                return -1
            pos = 0
        return -1

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        with self._x.cond:
            self._wait_for(size)
            return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = 1 << 62 if size is None or size < 0 else size
        x = self._x
        with x.cond:
            while True:
                found = self._find_newline(limit)
                if found >= 0:
                    return self._take(found)
                if x.body_len >= limit or x.body_complete:
                    return self._take(limit)
                self._wait_for(x.body_len + 1)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> RequestBody:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line
