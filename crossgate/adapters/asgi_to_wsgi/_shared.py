"""Shared mode: every request's ASGI app runs on the process's one loop thread.

The loop talks to the WSGI thread through a `queue.SimpleQueue`, the WSGI thread to the loop
through ``call_soon_threadsafe``. Both ways are bounded: the body is read as the app asks for
it, `READ_AHEAD` bytes ahead at most, and ``send()`` waits past ``send_buffer`` queued bytes.
A request normally costs two hand-offs (start the task, hand the response back).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import deque
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import TypeVarTuple

from crossgate.adapters.asgi_to_wsgi._call import LOST, AppCall, Emitted, Signal, resolve
from crossgate.exceptions import CrossgateError
from crossgate.sansio.asgi_call_state import AppPhase, Event, InputPhase, next_phase
from crossgate.types import ASGIApp, Message

__all__ = ["READ_AHEAD", "SharedCall"]

Ts = TypeVarTuple("Ts")

# How often a WSGI thread waiting for its app checks that the loop thread is still there.
_LIVENESS_POLL = 5.0

# Body bytes read per request for pieces from the loop: each is a hand-off both ways (~100 us),
# so a 10 MiB upload in 64 KiB pieces costs 20 of them, not 160.
READ_AHEAD = 512 * 1024


class SharedCall(AppCall):
    """One request in shared mode: the app's task on the loop thread, the WSGI side on the
    server's."""

    bounds_itself = True

    def start_task(self, app: ASGIApp, scope: Message) -> bool:
        # This mode's own state, made here, the first thing `begin` does.
        self.mailbox: SimpleQueue[Emitted] = SimpleQueue()
        self.delivered_all = False
        self.reading = False
        self.timer: asyncio.TimerHandle | None = None
        # The first piece (most often the whole body) is read here: the app needs no hand-off.
        piece = self.read_piece()
        if piece is None:
            return False
        self.pieces = deque((piece,))
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
        if not (self.reading or self.loop_body_end):
            self.reading = True
            self.mailbox.put(Signal.READ)

    def _deliver(self, pieces: list[bytes], end: bool, failed: bool) -> None:
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
        # The timer is cancelled when the app ends, and starts after the task.
        assert self.task is not None
        self.cancel(self.task, timeout)

    def call_on_loop(self, callback: Callable[[*Ts], object], *args: *Ts) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the adapter shut down
            self.loop.call_soon_threadsafe(callback, *args)

    def wait(self) -> None:
        while True:
            try:
                item = self.mailbox.get(timeout=_LIVENESS_POLL)
                break
            except Empty:  # pragma: no cover - only when the loop thread died under a request
                if not self.loop.is_running():
                    self.error = CrossgateError("the shared event loop stopped")
                    self.app = next_phase(self.app, Event.APP_RAISED)
                    item = Signal.DONE
                    break
        # Then every event already queued, without waiting: coalesces small chunks.
        while True:
            self._apply(item)
            try:
                item = self.mailbox.get_nowait()
            except Empty:
                return

    def _apply(self, item: Emitted) -> None:
        if item is not Signal.READ:
            self.take(item)
            return
        # Pieces worth READ_AHEAD bytes (at least one). May block on the client.
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
