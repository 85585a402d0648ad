"""The one engine of `ASGIToWSGI`, as inline mode runs it; `SharedCall` overrides a few parts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Iterable

from crossgate.adapters._streams import FILE_BLOCK_SIZE
from crossgate.adapters.asgi_to_wsgi._wsgi_side import WSGISide
from crossgate.concurrency._runtime import finish_loop
from crossgate.exceptions import AppProtocolError, ClientDisconnected
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

__all__ = ["BROKEN", "CLOSE_WHEN_DONE", "LOST", "TASK_NAME", "AppCall", "Emitted", "resolve"]

_log = logging.getLogger("crossgate")

TASK_NAME = "crossgate-asgi-request"  # a task without a name gets one made from a counter

# To the WSGI side: a response event, the app's phase at its end, or (shared mode) read more body.
Emitted = Start | Body | SendFile | AppPhase | InputPhase

BROKEN = (InputPhase.BROKEN, InputPhase.TOO_LARGE)  # the request's fault: a 413 or a 400
LOST = (ResponsePhase.GONE, ResponsePhase.FINISHED)  # nothing sent reaches the client now

# ASGI HTTP spec 2.4: send() raises an OSError once the client is gone.
_GONE = "the client disconnected; the response cannot be sent"
# Inline loops found serving a request at shutdown: their own thread closes them after it.
CLOSE_WHEN_DONE: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class AppCall(WSGISide):
    """One request and its WSGI iterable: the app's task calls `emit`, the WSGI side `take`."""

    bounds_itself = False  # the loop bounds the app's work after its response without close()

    async def run(self, app: ASGIApp, scope: Message) -> None:
        event = Event.APP_RETURNED
        try:
            await app(scope, self.receive, self.send)
        except asyncio.CancelledError:
            event = Event.APP_CANCELLED
            raise
        except Exception as exc:
            event = Event.APP_RAISED
            if self.response is ResponsePhase.COMPLETE and self.opts.raise_app_exceptions:
                self.late_error = exc  # `wsgi_raise_point`: close() raises it
            elif self.response is not ResponsePhase.RESPONDING:
                self.log_late(exc, complete=self.complete)  # not kept: it holds the app's objects
            else:
                self.error = exc
        finally:
            self.app = next_phase(self.app, event)
            self.emit(self.app)

    async def receive(self) -> Message:
        piece = await self.next_piece()
        if piece is not None:
            return {"type": "http.request", "body": piece[0], "more_body": piece[1]}
        if self.response is ResponsePhase.RESPONDING:
            # ASGI HTTP spec: http.disconnect comes once the response is sent or the client left.
            if self.disconnected is None:
                self.disconnected = self.loop.create_future()
            await asyncio.shield(self.disconnected)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.response in LOST:
            raise ClientDisconnected(_GONE)
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
            if data or not more:
                self.sent += len(data)
                self.emit(event)
            if more and self.sent - self.taken > self.opts.send_buffer:
                self.drain_waiter = waiter = self.loop.create_future()  # back-pressure
                # Checked again once published: the WSGI thread wakes only a waiter it can see.
                try:
                    if self.sent - self.taken > self.opts.send_buffer and self.response not in LOST:
                        await waiter
                finally:
                    self.drain_waiter = None
                if self.response in LOST:
                    raise ClientDisconnected(_GONE)
        elif event is not None:
            self.emit(event)
        if event is not None and cycle.complete:
            self.advance(Event.RESPONSE_COMPLETE)

    def advance(self, event: Event) -> None:
        """Move the response on, wake the app's waits and bound what it does from now on."""
        self.response = next_phase(self.response, event)
        for waiter in (self.disconnected, self.piece_waiter, self.drain_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        complete = event is Event.RESPONSE_COMPLETE
        self.timebox(self.opts.background_timeout if complete else self.opts.disconnect_grace)

    def cancel(self, task: asyncio.Task[None], timeout: float) -> None:
        what = "work after the response" if self.complete else "after the client disconnected"
        _log.warning("cancelling the ASGI app: still running %g s %s", timeout, what)
        task.cancel()

    def server_closed(self) -> None:
        late, self.late_error = self.late_error, None
        if late is not None:  # raised after close() looked: too late to raise
            self.log_late(late, complete=True)
        self.advance(Event.SERVER_CLOSED)

    def start_task(self, app: ASGIApp, scope: Message) -> bool:
        self.task = self.loop.create_task(self.run(app, scope), name=TASK_NAME)
        return True

    async def next_piece(self) -> tuple[bytes, bool] | None:
        closed = self.server is ServerPhase.CLOSED or self.response in LOST
        if closed or self.body is not InputPhase.READING:
            return None
        piece = self.read_piece()  # blocks the loop: it serves only this request
        if piece is None:
            self.advance(Event.CLIENT_GONE)
            return None
        return piece, self.body is InputPhase.READING

    def emit(self, item: Emitted) -> None:
        self.take(item)
        if self.driving:  # this request's, not another's leftover task: the WSGI side resumes
            self.loop.stop()

    def timebox(self, timeout: float) -> None:
        if self.driving:  # the WSGI side bounds it once it has control (`settle`)
            self.loop.stop()

    def call_on_loop(self, callback: Callable[..., object], *args: object) -> None:
        callback(*args)

    def wait(self) -> None:
        if self.response in LOST:  # the body could not be read: the app gets a grace period
            self.settle(self.opts.disconnect_grace)
            self.done_seen = True
            return
        # Stopped by `emit`: a future's done-callback would cost one more turn of the loop.
        self.driving = True
        try:
            self.loop.run_forever()
        finally:
            self.driving = False

    def finish(self) -> None:
        if not self.complete:
            self.advance(Event.CLIENT_GONE)
        if not self.done_seen:
            timeout = self.opts.background_timeout if self.complete else self.opts.disconnect_grace
            self.settle(timeout)
            # Turns for the clean-up the app's end scheduled (an async generator's finaliser).
            for _ in range(3):
                self.loop.run_until_complete(asyncio.sleep(0))
        if self.loop in CLOSE_WHEN_DONE and not self.loop.is_running():  # its adapter shut down
            CLOSE_WHEN_DONE.discard(self.loop)
            finish_loop(self.loop, self.opts.disconnect_grace)

    def settle(self, timeout: float) -> None:
        task = self.task
        assert task is not None  # made by begin()
        self.loop.run_until_complete(asyncio.wait((task,), timeout=timeout))
        if task.done():
            return
        self.cancel(task, timeout)
        self.loop.run_until_complete(asyncio.wait((task,), timeout=max(timeout, 1.0)))
        if not task.done():
            _log.warning("the ASGI app's task ignored its cancellation; it is left behind")

    def begin(self, app: ASGIApp, scope: Message) -> Iterable[bytes]:
        if not self.start_task(app, scope):
            return [self.fail()]
        while self.start is None and not self.done_seen:
            self.wait()
        start = self.start
        if start is None or (self.body in BROKEN and not self.ended):
            body = self.fail()
            self.ended = True
            if not self.done_seen:
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
            # A list lets the server skip close(); an app that raised needs it (`wsgi_raise_point`).
            if not self.done_seen:
                self.close()
            return self.out
        return self

    def take(self, item: Emitted) -> None:
        if type(item) is Body:
            data, more = item
            if data:
                self.out.append(data)
            if not more:
                self.ended = True
        elif type(item) is Start:
            self.start = item
        elif type(item) is SendFile:
            self.file_path = item.path
            self.ended = True
        else:  # the app's phase (InputPhase.READING goes to SharedCall alone)
            self.done_seen = True

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
            if self.file is not None:
                block = self.file.read(FILE_BLOCK_SIZE)
                if block:
                    out.append(block)
                    continue
                self.file.close()
                self.file = None
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
        path, self.file_path = self.file_path, None
        assert path is not None
        try:
            self.file = open(path, "rb")  # noqa: SIM115 - closed by __next__ or close()
        except OSError as exc:
            self.violation = AppProtocolError(f"http.response.pathsend cannot open {path!r}: {exc}")
            self.out = [self.fail()]
            return self
        file_wrapper = self.environ.get("wsgi.file_wrapper")
        if wrap and file_wrapper is not None:
            # The server knows only its own wrapper: its close() must close this call too.
            wrapper = file_wrapper(self.file, FILE_BLOCK_SIZE)
            inner = getattr(wrapper, "close", None)

            def close() -> None:
                try:
                    if inner is not None:
                        inner()
                finally:
                    self.close()

            with contextlib.suppress(AttributeError, TypeError):  # else the call is the iterable
                wrapper.close = close
                result: Iterable[bytes] = wrapper
                return result
        return self

    def close(self) -> None:
        """PEP 3333's ``close()``: raises what the app raised after its complete response."""
        if self.server is ServerPhase.CLOSED:
            return
        self.give(Event.SERVER_CLOSED)
        if self.file is not None:
            self.file.close()
            self.file = None
        self.finish()
        late = None
        if self.app is not AppPhase.RUNNING:  # else server_closed logs what it may raise later
            late, self.late_error = self.late_error, None
        if not self.done_seen:
            self.call_on_loop(self.server_closed)
        if late is not None:
            self.plan(late, complete=True)
            raise late
