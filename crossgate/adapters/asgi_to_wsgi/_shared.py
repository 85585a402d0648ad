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
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import TypeVarTuple

from crossgate.adapters.asgi_to_wsgi._call import LOST, AppCall, Emitted, Options, Signal, resolve
from crossgate.exceptions import CrossgateError
from crossgate.sansio.asgi_call_state import AppPhase, Event, InputPhase, next_phase
from crossgate.types import ASGIApp, Message, StartResponse, WSGIEnvironment

__all__ = ["READ_AHEAD", "SharedCall"]

_log = logging.getLogger("crossgate")

Ts = TypeVarTuple("Ts")

# How often a WSGI thread waiting for its app checks that the loop thread is still there.
_LIVENESS_POLL = 5.0

# Body bytes the WSGI thread reads (in read_size pieces) per request from the loop: each request
# is a hand-off both ways (about 100 us here), so a 10 MiB upload in 64 KiB pieces costs 20 of
# them, not 160. Bounded: the app never has more than this (plus a piece) waiting for it.
READ_AHEAD = 512 * 1024


class SharedCall(AppCall):
    """One request in shared mode: the app's task on the loop thread, the WSGI side on the
    server's thread, talking through a mailbox one way and ``call_soon_threadsafe`` the other."""

    __slots__ = ("delivered_all", "loop_body_end", "mailbox", "pieces", "reading", "timer")

    # The loop's timers bound the app's work after its response: close() is not needed for it.
    bounds_itself = True

    def __init__(
        self,
        opts: Options,
        loop: asyncio.AbstractEventLoop,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        length: int | None,
    ) -> None:
        super().__init__(opts, loop, environ, start_response, length)
        self.mailbox: SimpleQueue[Emitted] = SimpleQueue()
        self.pieces: deque[bytes] = deque()
        self.loop_body_end = False
        self.delivered_all = False
        self.reading = False
        self.timer: asyncio.TimerHandle | None = None

    # -- the loop side -------------------------------------------------------------------------

    def emit(self, item: Emitted) -> None:
        if item is Signal.DONE and self.timer is not None:
            self.timer.cancel()
        self.mailbox.put(item)

    async def next_piece(self) -> tuple[bytes, bool] | None:
        while not self.delivered_all:
            if self.pieces:
                data = self.pieces.popleft()
                last = self.loop_body_end and not self.pieces
                if last:
                    self.delivered_all = True
                elif len(self.pieces) < 2:
                    self._want_more()  # read the next ones while the app uses these
                return data, not last
            if self.response in LOST:
                break
            self._want_more()
            self.piece_waiter = waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self.piece_waiter = None
        return None

    def _want_more(self) -> None:
        """Ask the WSGI thread for the next body pieces, unless they are being read already."""
        if not (self.reading or self.loop_body_end):
            self.reading = True
            self.mailbox.put(Signal.READ)

    def _deliver(self, pieces: list[bytes], end: bool, failed: bool) -> None:
        """Body pieces from the WSGI thread; ``failed`` when the rest cannot be had."""
        self.reading = False
        self.pieces.extend(pieces)
        self.loop_body_end = end
        if failed:
            self.lose()
        resolve(self.piece_waiter)

    def timebox(self, timeout: float) -> None:
        if self.app is AppPhase.RUNNING and self.timer is None:
            self.timer = self.loop.call_later(timeout, self._expire, timeout)

    def _expire(self, timeout: float) -> None:
        # The timer is cancelled when the app ends, so the task is still running here.
        if self.task is None:  # pragma: no cover - the timer starts after the task
            return
        what = "work after the response" if self.complete else "after the client disconnected"
        _log.warning("cancelling the ASGI app: still running %g s %s", timeout, what)
        self.task.cancel()

    # -- the WSGI side ---------------------------------------------------------------------

    def start_task(self, app: ASGIApp, scope: Message) -> bool:
        # The first piece is read before the app starts: for most requests it is the whole
        # body, and the app then never waits for a hand-off to get it.
        piece = self.read_piece()
        if piece is None:
            return False
        self.pieces.append(piece)
        self.loop_body_end = self.body is InputPhase.END
        context = contextvars.copy_context()
        try:
            self.loop.call_soon_threadsafe(self._create_task, app, scope, context)
        except RuntimeError:  # pragma: no cover - the adapter was shut down meanwhile
            self.error = CrossgateError("the shared event loop is closed")
            self.app = next_phase(self.app, Event.APP_RAISED)
            return False
        return True

    def _create_task(self, app: ASGIApp, scope: Message, context: contextvars.Context) -> None:
        self.task = self.loop.create_task(self.run(app, scope), context=context)

    def call_on_loop(self, callback: Callable[[*Ts], object], *args: *Ts) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the adapter shut down
            self.loop.call_soon_threadsafe(callback, *args)

    def wait(self) -> None:
        self._apply(self._get())
        # Apply every event already queued, without waiting: coalesces small chunks.
        while True:
            try:
                item = self.mailbox.get_nowait()
            except Empty:
                return
            self._apply(item)

    def _get(self) -> Emitted:
        while True:
            try:
                return self.mailbox.get(timeout=_LIVENESS_POLL)
            except Empty:  # pragma: no cover - only when the loop thread died under a request
                if not self.loop.is_running():
                    self.error = CrossgateError("the shared event loop stopped")
                    self.app = next_phase(self.app, Event.APP_RAISED)
                    return Signal.DONE

    def _apply(self, item: Emitted) -> None:
        if item is not Signal.READ:
            self.take(item)
            return
        # Pieces worth READ_AHEAD bytes (at least one; fewer at the end of the body). May
        # block on the client: the app asked for the body.
        pieces: list[bytes] = []
        size = 0
        failed = False
        while size < READ_AHEAD and self.body is InputPhase.READING:
            piece = self.read_piece()
            if piece is None:
                failed = True
                break
            pieces.append(piece)
            size += len(piece)
        self.call_on_loop(self._deliver, pieces, self.body is InputPhase.END, failed)

    def finish(self) -> None:
        pass
