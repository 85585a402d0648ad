"""Shared mode: the app runs on the process's one loop thread, the WSGI thread waits on a queue."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import deque
from collections.abc import Callable
from queue import Empty, SimpleQueue

from crossgate.adapters.asgi_to_wsgi._call import BROKEN, LOST, AppCall, Emitted, resolve
from crossgate.exceptions import CrossgateError
from crossgate.sansio.asgi_call_state import AppPhase, Event, InputPhase, next_phase
from crossgate.types import ASGIApp, Message

__all__ = ["READ_AHEAD", "SharedCall"]

_LIVENESS_POLL = 5.0  # how often a waiting WSGI thread checks that the loop thread is alive
READ_AHEAD = 512 * 1024  # each read for the loop costs a hand-off both ways (~100 us)


class SharedCall(AppCall):
    """One request in shared mode: its body is read as the app asks, `READ_AHEAD` bytes ahead."""

    bounds_itself = True
    reading = False
    timer: asyncio.TimerHandle | None = None

    def start_task(self, app: ASGIApp, scope: Message) -> bool:
        self.mailbox: SimpleQueue[Emitted] = SimpleQueue()
        # The first piece (most often the whole body) is read here: the app needs no hand-off.
        piece = self.read_piece()
        if piece is None:
            return False
        self.pieces = deque((piece,))
        self.loop_body_end = self.body is InputPhase.END
        try:
            context = contextvars.copy_context()
            self.loop.call_soon_threadsafe(self._create_task, app, scope, context=context)
        except RuntimeError:  # pragma: no cover - the adapter was shut down meanwhile
            self.error = CrossgateError("the shared event loop is closed")
            self.app = next_phase(self.app, Event.APP_RAISED)
            return False
        return True

    def _create_task(self, app: ASGIApp, scope: Message) -> None:  # in the request's context
        self.task = self.loop.create_task(self.run(app, scope))

    def emit(self, item: Emitted) -> None:
        if type(item) is AppPhase and self.timer is not None:
            self.timer.cancel()
        self.mailbox.put(item)

    async def next_piece(self) -> tuple[bytes, bool] | None:
        while self.pieces or not (self.loop_body_end or self.response in LOST):
            if self.pieces:
                data = self.pieces.popleft()
                if len(self.pieces) < 2:
                    self._want_more()  # read the next ones while the app uses these
                return data, not (self.loop_body_end and not self.pieces)
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
            self.mailbox.put(InputPhase.READING)

    def _deliver(self, pieces: list[bytes], body: InputPhase) -> None:
        self.reading = False
        self.pieces.extend(pieces)
        self.loop_body_end = body is InputPhase.END
        if body in BROKEN:
            self.advance(Event.CLIENT_GONE)
        resolve(self.piece_waiter)

    def timebox(self, timeout: float) -> None:
        if self.app is AppPhase.RUNNING and self.timer is None:
            assert self.task is not None  # this runs on the loop, after `_create_task`
            self.timer = self.loop.call_later(timeout, self.cancel, self.task, timeout)

    def call_on_loop(self, callback: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the adapter shut down
            self.loop.call_soon_threadsafe(callback, *args)

    def wait(self) -> None:
        item: Emitted | None = None
        while item is None:
            with contextlib.suppress(Empty):
                item = self.mailbox.get(timeout=_LIVENESS_POLL)
            if item is None and not self.loop.is_running():  # pragma: no cover - it died
                self.error = CrossgateError("the shared event loop stopped")
                item = self.app = next_phase(self.app, Event.APP_RAISED)
        while item is not None:  # then every item queued, without waiting: coalesces small chunks
            if item is InputPhase.READING:
                self._read_ahead()
            else:
                self.take(item)
            item = None if self.mailbox.empty() else self.mailbox.get_nowait()

    def finish(self) -> None:
        pass  # the loop bounds the app's work itself (`timebox`)

    def _read_ahead(self) -> None:
        """Read pieces worth READ_AHEAD bytes (at least one) for the loop; may block."""
        pieces: list[bytes] = []
        size = 0
        while size < READ_AHEAD and self.body is InputPhase.READING:
            piece = self.read_piece()
            if piece is None:
                break
            pieces.append(piece)
            size += len(piece)
        self.call_on_loop(self._deliver, pieces, self.body)
