"""The one engine of `ASGIToWSGI`'s two modes: the app's ``receive`` and ``send``, the WSGI
iterable and ``close()``."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import TypeVarTuple

from crossgate.adapters._streams import FILE_BLOCK_SIZE
from crossgate.adapters.asgi_to_wsgi._wsgi_side import WSGISide, client_gone
from crossgate.exceptions import AppProtocolError
from crossgate.sansio.asgi_call_state import (
    AppPhase,
    Event,
    InputPhase,
    ResponsePhase,
    ServerPhase,
    next_phase,
)
from crossgate.sansio.asgi_response import Body, SendFile, Start
from crossgate.types import ASGIApp, Message

__all__ = ["LOST", "AppCall", "Emitted", "Signal", "resolve"]

_log = logging.getLogger("crossgate")

Ts = TypeVarTuple("Ts")


class Signal(enum.Enum):
    END = "the response is complete"
    DONE = "the app's coroutine ended"
    READ = "read the next body pieces (shared mode)"


# What the loop side tells the WSGI side (`AppCall.emit`).
Emitted = Start | bytes | SendFile | Signal

# The body phases in which the request's own fault decides the answer (a 413 or a 400).
BROKEN = (InputPhase.BROKEN, InputPhase.TOO_LARGE)
# The response phases in which nothing the app sends can reach the client any more.
LOST = (ResponsePhase.GONE, ResponsePhase.FINISHED)


def resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class AppCall(WSGISide, ABC):
    """One request and its WSGI iterable. The app's task (loop side) tells the WSGI side
    (`begin`, ``__next__``, `close`) what happened with `emit`; the WSGI side applies it
    (`take`) and waits for more (`wait`). A mode (`InlineCall`, `SharedCall`) says only how the
    two sides meet, by the abstract methods below."""

    # The loop bounds the app's work after its response by itself: close() is not needed for it.
    bounds_itself = False

    async def run(self, app: ASGIApp, scope: Message) -> None:
        """The request's task; what the app raises is kept for `fail` or `close`, or logged."""
        event = Event.APP_RETURNED
        try:
            await app(scope, self.receive, self.send)
        except asyncio.CancelledError:
            event = Event.APP_CANCELLED
            raise
        except Exception as exc:
            event = Event.APP_RAISED
            if self.response is ResponsePhase.COMPLETE and self.opts.raise_app_exceptions:
                # `wsgi_raise_point`: close() raises it, once the server sent the response.
                self.late_error = exc
            elif self.response is not ResponsePhase.RESPONDING:
                # Not kept: nothing depends on it any more, and its traceback would keep the
                # app's objects (an abandoned async generator awaiting its clean-up) alive.
                self.log_late(exc, complete=self.complete)
            else:
                self.error = exc
        finally:
            self.app = next_phase(self.app, event)
            self.emit(Signal.DONE)

    async def receive(self) -> Message:
        piece = await self.next_piece()
        if piece is not None:
            return {"type": "http.request", "body": piece[0], "more_body": piece[1]}
        if self.response is ResponsePhase.RESPONDING:
            # ASGI HTTP spec ("Disconnect"): after the body, http.disconnect comes once the
            # response is sent or the client has left.
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            finally:
                self.waiters.remove(waiter)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.response in LOST:
            raise client_gone()
        if self.violation is not None:
            raise AppProtocolError(f"the response already broke the protocol: {self.violation}")
        cycle = self.cycle
        dropped = cycle.dropped
        try:
            event = cycle.feed(message)
        except AppProtocolError as exc:
            self.violation = exc
            raise
        if cycle.dropped != dropped:
            _log.warning(
                "the ASGI app sent %d bytes past its Content-Length of %s; dropped them",
                cycle.dropped - dropped,
                cycle.content_length,
            )
        if type(event) is Body:
            data, more = event
            if data:
                self.sent += len(data)
                self.emit(data)
            if not more:
                self.emit(Signal.END)
                self.completed()
            elif self.sent - self.taken > self.opts.send_buffer:
                # Back-pressure: wait until the WSGI server has taken enough.
                self.drain_waiter = waiter = self.loop.create_future()
                # Checked again once the waiter is published: in shared mode the WSGI thread
                # may have taken bytes in between, and it only wakes a waiter it can see.
                try:
                    if self.sent - self.taken > self.opts.send_buffer and not self.gone:
                        await waiter
                finally:
                    self.drain_waiter = None
                if self.gone:
                    raise client_gone()
        elif type(event) is Start:
            self.emit(event)
        elif type(event) is SendFile:
            self.emit(event)
            self.completed()

    def release(self) -> None:
        """Wake every wait of the app's (``receive()``, back-pressure in ``send()``)."""
        for waiter in self.waiters:
            resolve(waiter)
        if self.piece_waiter is not None:  # tested here: release() runs every request
            resolve(self.piece_waiter)
        if self.drain_waiter is not None:
            resolve(self.drain_waiter)

    def completed(self) -> None:
        """The app completed its response: bound its work after it (background tasks)."""
        self.response = next_phase(self.response, Event.RESPONSE_COMPLETE)
        self.release()
        self.timebox(self.opts.background_timeout)

    @property
    def gone(self) -> bool:
        return self.response is ResponsePhase.GONE

    def lose(self, event: Event = Event.CLIENT_GONE) -> None:
        """The client is gone (or the server closed the response): ``receive()`` answers
        ``http.disconnect``, ``send()`` raises."""
        self.response = next_phase(self.response, event)
        self.release()
        self.timebox(self.opts.disconnect_grace)

    def cancel(self, task: asyncio.Task[None], timeout: float) -> None:
        """Cancel the app, still running ``timeout`` s after its response or its client's end."""
        what = "work after the response" if self.complete else "after the client disconnected"
        _log.warning("cancelling the ASGI app: still running %g s %s", timeout, what)
        task.cancel()

    def server_closed(self) -> None:
        """The WSGI server called ``close()`` (on the loop side)."""
        late, self.late_error = self.late_error, None
        if late is not None:  # raised after close() looked: too late to raise
            self.log_late(late, complete=True)
        self.lose(Event.SERVER_CLOSED)

    # -- what a mode says: how the loop side and the WSGI side meet

    @abstractmethod
    def start_task(self, app: ASGIApp, scope: Message) -> bool:
        """Start the app's task; False when it cannot start (`fail` answers)."""

    @abstractmethod
    def emit(self, item: Emitted) -> None:
        """Tell the WSGI side (`take`) what happened on the loop side."""

    @abstractmethod
    def wait(self) -> None:
        """Block the WSGI side until the loop side has emitted more."""

    @abstractmethod
    def call_on_loop(self, callback: Callable[[*Ts], object], *args: *Ts) -> None:
        """Run ``callback`` on the loop side."""

    @abstractmethod
    def timebox(self, timeout: float) -> None:
        """Cancel the app if it has not ended ``timeout`` s from now."""

    @abstractmethod
    async def next_piece(self) -> tuple[bytes, bool] | None:
        """The next body piece and whether more follows; ``None`` when there is none."""

    def finish(self) -> None:
        """The server is done with the response (from `close`)."""

    # -- the WSGI side

    def begin(self, app: ASGIApp, scope: Message) -> Iterable[bytes]:
        if not self.start_task(app, scope):
            return [self.fail()]
        while self.start is None and not self.done_seen:
            self.wait()
        start = self.start
        # A body that could not be read makes the answer a 413 / 400, unless the app already
        # completed its own response.
        if start is None or (self.body in BROKEN and not self.ended):
            body = self.fail()
            self.ended = True
            if not self.done_seen:  # the app is told the client is gone, and bounded
                self.close()
            return [body]
        self.start_response(start.status, start.headers)
        self.give(Event.HEADERS_GIVEN)
        if self.file_path is not None:
            try:
                return self.open_file(wrap=True)
            except BaseException:  # raised from the application call: no close() will come
                with contextlib.suppress(Exception):
                    self.close()
                raise
        if self.ended and self.late_error is None and (self.done_seen or self.bounds_itself):
            # The usual case: the app answered at once. A list lets the server skip close().
            # An app that answered in full and then raised (Starlette's ServerErrorMiddleware
            # and WSGIToASGI answer 500 and raise) gets the iterable: the server sends its
            # whole page, and close() raises (`wsgi_raise_point`).
            if not self.done_seen:
                self.close()  # the loop bounds the app's work after the response itself
            return self.out
        return self

    def take(self, item: Emitted) -> None:
        if type(item) is bytes:
            self.out.append(item)
        elif type(item) is Start:
            self.start = item
        elif type(item) is SendFile:
            self.file_path = item.path
            self.ended = True
        elif item is Signal.END:
            self.ended = True
        else:  # Signal.DONE (READ goes to SharedCall alone)
            self.done_seen = True

    def __iter__(self) -> AppCall:
        return self

    def __next__(self) -> bytes:
        while True:
            out = self.out
            if out:
                data = out[0] if len(out) == 1 else b"".join(out)
                out.clear()
                self.taken += len(data)
                waiter = self.drain_waiter
                if waiter is not None and self.sent - self.taken <= self.opts.send_buffer:
                    self.drain_waiter = None
                    self.call_on_loop(resolve, waiter)
                self.give(Event.BODY_GIVEN)
                return data
            file = self.file
            if file is not None:
                block = file.read(FILE_BLOCK_SIZE)
                if not block:
                    file.close()
                    self.file = None
                    raise StopIteration
                self.give(Event.BODY_GIVEN)
                return block
            if self.file_path is not None:  # a pathsend after the iterable was handed over
                self.open_file(wrap=False)
                continue
            if self.ended:
                raise StopIteration
            if self.done_seen:
                self.ended = True
                return self.fail()
            self.wait()

    def open_file(self, *, wrap: bool) -> Iterable[bytes]:
        """Open a pathsend's file; with ``wrap`` (the iterable is not handed over yet), return
        it in the server's ``wsgi.file_wrapper`` (PEP 3333; gunicorn uses ``sendfile()``), else
        ``self``, which sends it (or the error page when it cannot be opened)."""
        path = self.file_path
        assert path is not None  # checked by the callers
        self.file_path = None
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed by the wrapper, __next__ or close()
        except OSError as exc:
            self.violation = AppProtocolError(f"http.response.pathsend cannot open {path!r}: {exc}")
            self.out = [self.fail()]
            return self
        if wrap and self.file_wrapper is not None:
            # The server recognises only its own wrapper, so the wrapper is the iterable, and
            # its close() (which the server calls) must close this call too.
            wrapper = self.file_wrapper(file, FILE_BLOCK_SIZE)
            inner = getattr(wrapper, "close", None)

            def close() -> None:
                try:
                    if inner is not None:
                        inner()
                finally:
                    self.close()

            try:
                wrapper.close = close
            except (AttributeError, TypeError):
                pass  # a wrapper that takes no close(): the call is the iterable
            else:
                result: Iterable[bytes] = wrapper
                return result
        self.file = file
        return self

    def close(self) -> None:
        """Called by the WSGI server when it is done with the response (PEP 3333).

        Raises:
            Exception: what the app raised after its complete response: the server has sent
                the response whole by then, and the middleware around the adapter sees it.
        """
        if self.server is ServerPhase.CLOSED:
            return
        self.give(Event.SERVER_CLOSED)
        if self.file is not None:
            self.file.close()
            self.file = None
        self.finish()
        late = None
        if self.app is not AppPhase.RUNNING:
            # The app's phase moves after late_error is set: what late_error holds now is
            # final. When the app has not ended, server_closed logs what it may raise later.
            late, self.late_error = self.late_error, None
        if not self.done_seen:
            self.call_on_loop(self.server_closed)
        if late is not None:
            self._plan(late, complete=True)
            raise late
