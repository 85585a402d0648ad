"""Shared mode: every request's ASGI app runs on the process's one loop thread.

The WSGI thread and the loop talk through a `queue.SimpleQueue` (loop -> WSGI thread: response
events and requests for body pieces) and ``call_soon_threadsafe`` (WSGI thread -> loop: body
pieces, "the server closed the response"). Hand-offs are bounded both ways:

* the request body is read only as the app asks for it, `READ_AHEAD` bytes ahead at most (the
  next pieces are read while the app works on the current ones), never the whole
  ``wsgi.input``;
* the app waits in ``send()`` once more than ``send_buffer`` bytes are queued that the WSGI
  server has not taken yet.

A request normally costs two hand-offs: the task is started on the loop, and the loop hands the
response start back (the body usually comes with it). The first body piece is read before the
app starts, so a small request body costs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import Iterable
from queue import Empty, SimpleQueue
from typing import Any

from crossgate.adapters._asgi_call import Call, Options, client_gone
from crossgate.exceptions import AppProtocolError, CrossgateError
from crossgate.sansio.asgi_response import Body, SendFile, Start
from crossgate.types import ASGIApp, Message, StartResponse, WSGIEnvironment

__all__ = ["SharedCall"]

_log = logging.getLogger("crossgate")

# Events from the loop to the WSGI thread.
_START, _BODY, _END, _FILE, _READ, _DONE = range(6)
_Event = tuple[int, Any]

# How often a WSGI thread waiting for its app checks that the loop thread is still there.
_LIVENESS_POLL = 5.0

# Body bytes the WSGI thread reads (in read_size pieces) per request from the loop: each request
# is a hand-off both ways (about 100 us here), so a 10 MiB upload in 64 KiB pieces costs 20 of
# them, not 160. Bounded: the app never has more than this (plus a piece) waiting for it.
READ_AHEAD = 512 * 1024


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SharedCall(Call):
    """One request in shared mode; also the response iterable the WSGI server consumes."""

    __slots__ = (
        "delivered_all",
        "done_seen",
        "drain_waiter",
        "ended",
        "input_closed",
        "loop",
        "loop_body_end",
        "mailbox",
        "piece_waiter",
        "pieces",
        "reading",
        "ready",
        "sent",
        "start",
        "taken",
        "task",
        "timer",
        "waiters",
    )

    def __init__(
        self,
        opts: Options,
        loop: asyncio.AbstractEventLoop,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        length: int | None,
    ) -> None:
        super().__init__(opts, environ, start_response, length)
        self.loop = loop
        self.mailbox: SimpleQueue[_Event] = SimpleQueue()
        # Loop side.
        self.task: asyncio.Task[None] | None = None
        self.pieces: deque[bytes] = deque()
        self.loop_body_end = False
        self.delivered_all = False
        self.reading = False
        self.piece_waiter: asyncio.Future[None] | None = None
        self.waiters: list[asyncio.Future[None]] = []
        self.drain_waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.input_closed = False
        self.sent = 0
        # WSGI side.
        self.taken = 0
        self.ready: list[bytes] = []
        self.start: Start | None = None
        self.ended = False
        self.done_seen = False

    # -- the loop side -------------------------------------------------------------------------

    def _begin(self, app: ASGIApp, scope: Message, context: contextvars.Context) -> None:
        self.task = self.loop.create_task(self.run(app, scope), context=context)

    def app_ended(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.mailbox.put((_DONE, None))

    async def receive(self) -> Message:
        while not self.delivered_all:
            if self.pieces:
                data = self.pieces.popleft()
                last = self.loop_body_end and not self.pieces
                if last:
                    self.delivered_all = True
                elif len(self.pieces) < 2:
                    self._want_more()  # read the next ones while the app uses these
                return {"type": "http.request", "body": data, "more_body": not last}
            if self.gone or self.input_closed:
                break
            self._want_more()
            self.piece_waiter = waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self.piece_waiter = None
        if not (self.complete or self.gone):
            # ASGI HTTP spec ("Disconnect"): after the body, http.disconnect comes once the
            # response is sent or the client has left.
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            finally:
                self.waiters.remove(waiter)
        return {"type": "http.disconnect"}

    def _want_more(self) -> None:
        """Ask the WSGI thread for the next body piece, unless it is being read already."""
        if not (self.reading or self.loop_body_end):
            self.reading = True
            self.mailbox.put((_READ, None))

    def _deliver(self, pieces: list[bytes], end: bool, failed: bool) -> None:
        """Body pieces from the WSGI thread; ``failed`` when the rest cannot be had."""
        self.reading = False
        self.pieces.extend(pieces)
        self.loop_body_end = end
        if failed:
            self._lose()
        if self.piece_waiter is not None:
            _resolve(self.piece_waiter)

    async def send(self, message: Message) -> None:
        if self.gone:
            raise client_gone()
        if self.violation is not None:
            raise AppProtocolError(f"the response already broke the protocol: {self.violation}")
        try:
            event = self.feed(message)
        except AppProtocolError as exc:
            self.violation = exc
            raise
        if type(event) is Body:
            data, more = event
            if data:
                self.sent += len(data)
                self.mailbox.put((_BODY, data))
            if not more:
                self.mailbox.put((_END, None))
                self._complete()
            elif self.sent - self.taken > self.opts.send_buffer:
                await self._drained()
        elif type(event) is Start:
            self.mailbox.put((_START, event))
        elif type(event) is SendFile:
            self.mailbox.put((_FILE, event.path))
            self._complete()

    async def _drained(self) -> None:
        """Back-pressure: wait until the WSGI server has taken enough of the queued bytes."""
        self.drain_waiter = waiter = self.loop.create_future()
        # Checked again after publishing the waiter: the WSGI thread may have taken bytes in
        # between, and it only wakes a waiter it can see.
        if self.sent - self.taken > self.opts.send_buffer and not self.gone:
            try:
                await waiter
            finally:
                self.drain_waiter = None
        else:  # pragma: no cover - the WSGI thread took the bytes in between: a race
            self.drain_waiter = None
        if self.gone:
            raise client_gone()

    def _release(self) -> None:
        for waiter in self.waiters:
            _resolve(waiter)
        for future in (self.piece_waiter, self.drain_waiter):
            if future is not None:
                _resolve(future)

    def _complete(self) -> None:
        # Called from send(), so the app is still running: bound its work after the response.
        self.complete = True
        self._release()
        self.timer = self.loop.call_later(self.opts.background_timeout, self._expire)

    def _lose(self) -> None:
        """The client is gone: ``receive()`` answers ``http.disconnect``, ``send()`` raises."""
        self.gone = True
        self._release()
        if not self.app_done and self.timer is None:
            self.timer = self.loop.call_later(self.opts.disconnect_grace, self._expire)

    def _expire(self) -> None:
        # The timer is cancelled when the app ends, so the task is still running here.
        if self.task is None:  # pragma: no cover - the timer starts after the task
            return
        if self.complete:
            timeout, what = self.opts.background_timeout, "work after the response"
        else:
            timeout, what = self.opts.disconnect_grace, "after the client disconnected"
        _log.warning("cancelling the ASGI app: still running %g s %s", timeout, what)
        self.task.cancel()

    def keep_late(self, exc: Exception) -> bool:
        # Once the WSGI server has closed the response, nothing can be raised to it any more.
        return not self.input_closed and super().keep_late(exc)

    def _server_closed(self) -> None:
        """The WSGI server called ``close()``: nobody reads the body or the response now."""
        self.input_closed = True
        late, self.late_error = self.late_error, None
        if late is not None:
            # The app raised after the WSGI side's close() looked (it had not ended then).
            self.log_late(late, complete=True)
        if self.complete:
            if self.piece_waiter is not None:
                _resolve(self.piece_waiter)
        else:
            self._lose()

    # -- the WSGI side ---------------------------------------------------------------------

    def begin(self, app: ASGIApp, scope: Message) -> Iterable[bytes]:
        """Start the app on the loop and wait until the response starts; return the iterable."""
        # The first piece is read before the app starts: for most requests it is the whole
        # body, and the app then never waits for a hand-off to get it.
        piece = self.read_piece()
        if piece is None:
            return [self.fail()]
        self.pieces.append(piece)
        self.loop_body_end = self.body_end
        try:
            self.loop.call_soon_threadsafe(self._begin, app, scope, contextvars.copy_context())
        except RuntimeError:  # pragma: no cover - the adapter was shut down meanwhile
            self.error = CrossgateError("the shared event loop is closed")
            return [self.fail()]
        while self.start is None and not self.done_seen:
            self._take(self._get())
        start = self.start
        # A body that could not be read makes the answer a 413 / 400, unless the app already
        # completed its own response.
        if start is None or ((self.too_large or self.body_failed) and not self.ended):
            return [self.fail()]
        self._take_queued()
        self.start_response(start.status, start.headers)
        self.wsgi_started = True
        if self.file_path is not None:
            try:
                return self._send_file(wrap=True)
            except BaseException:
                # The app's error, raised to the server from the application call: no
                # close() will come, so the loop is told here.
                with contextlib.suppress(Exception):
                    self.close()
                raise
        # An app that answered in full and then raised gets the iterable: close() raises
        # once the server sent the whole response (see InlineCall.begin).
        if self.ended and not (self.app_done and self.late_error is not None):
            # Complete already: a list lets the server skip close(); the loop bounds the
            # app's work after the response by itself.
            self.close()
            return self.ready
        return self

    def _get(self) -> _Event:
        while True:
            try:
                return self.mailbox.get(timeout=_LIVENESS_POLL)
            except Empty:  # pragma: no cover - only when the loop thread died under a request
                if not self.loop.is_running():
                    self.error = CrossgateError("the shared event loop stopped")
                    return (_DONE, None)

    def _take(self, event: _Event) -> None:
        """Apply one event from the loop to the WSGI side's state."""
        kind, value = event
        if kind == _BODY:
            self.ready.append(value)
        elif kind == _READ:
            pieces, failed = self._read_batch()
            with contextlib.suppress(RuntimeError):  # the loop closed during the read
                self.loop.call_soon_threadsafe(self._deliver, pieces, self.body_end, failed)
        elif kind == _START:
            self.start = value
        elif kind == _END:
            self.ended = True
        elif kind == _FILE:
            self.file_path = value
        else:
            self.done_seen = True

    def _read_batch(self) -> tuple[list[bytes], bool]:
        """Pieces worth `READ_AHEAD` bytes (at least one; fewer at the end of the body), and
        whether the read failed. May block on the client: the app asked for the body."""
        pieces: list[bytes] = []
        size = 0
        while size < READ_AHEAD and not self.body_end:
            piece = self.read_piece()
            if piece is None:
                return pieces, True
            pieces.append(piece)
            size += len(piece)
        return pieces, False

    def _take_queued(self) -> None:
        """Apply every event already queued, without waiting: coalesces small chunks."""
        while True:
            try:
                event = self.mailbox.get_nowait()
            except Empty:
                return
            self._take(event)

    def _hand_over(self) -> bytes:
        ready = self.ready
        data = ready[0] if len(ready) == 1 else b"".join(ready)
        ready.clear()
        self.taken += len(data)
        waiter = self.drain_waiter
        if waiter is not None and self.sent - self.taken <= self.opts.send_buffer:
            self.drain_waiter = None
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self.loop.call_soon_threadsafe(_resolve, waiter)
        self.headers_sent = True
        return data

    def _send_file(self, *, wrap: bool) -> Iterable[bytes]:
        self.ended = True
        wrapped = self.open_file(wrap=wrap)
        return self if wrapped is None else wrapped

    def queue_failure(self, body: bytes) -> None:
        self.ready = [body]

    def __iter__(self) -> SharedCall:
        return self

    def __next__(self) -> bytes:
        while True:
            if self.ready:
                return self._hand_over()
            file = self.file
            if file is not None:
                block = self.file_block(file)
                if block is None:
                    raise StopIteration
                return block
            if self.file_path is not None:
                self._send_file(wrap=False)
                continue
            if self.ended:
                raise StopIteration
            if self.done_seen:
                self.ended = True
                return self.fail()
            self._take(self._get())
            self._take_queued()

    def close(self) -> None:
        """Called by the WSGI server when it is done with the response (PEP 3333)."""
        if self.closed:
            return
        self.closed = True
        self.close_file()
        late = None
        if self.app_done:
            # The loop sets app_done after late_error: what late_error holds now is final.
            # When the app has not ended, _server_closed logs what it may raise later.
            late, self.late_error = self.late_error, None
        if not self.done_seen:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the adapter shut down
                self.loop.call_soon_threadsafe(self._server_closed)
        self.raise_late(late)
