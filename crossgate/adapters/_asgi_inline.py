"""Inline mode: the WSGI thread runs the ASGI app on its own event loop, with no hand-off.

``__call__`` runs the loop until ``http.response.start`` arrives, then calls ``start_response``;
the iterable's ``__next__`` runs it until the next body chunk; ``close()`` runs it while the app
finishes its work after the response (bounded) or, when the client left, while it notices
(bounded too), then cancels it. Between those calls the loop does not run at all.

``receive()`` reads ``wsgi.input`` right there, on the WSGI thread, while that thread is running
the loop: the read blocks the loop, but nothing else needs it meanwhile, as this thread serves
only this request. Only tasks the app left behind from earlier requests wait that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from crossgate.adapters._asgi_call import Call, Options, client_gone
from crossgate.adapters._loops import release
from crossgate.exceptions import AppProtocolError
from crossgate.sansio.asgi_response import Body, SendFile, Start
from crossgate.types import ASGIApp, Message, StartResponse, WSGIEnvironment

__all__ = ["TASK_NAME", "InlineCall"]

_log = logging.getLogger("crossgate")

# The name of every request's task (asyncio.Task.get_name()).
TASK_NAME = "crossgate-asgi-request"


async def _turns() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


class InlineCall(Call):
    """One request in inline mode; also the response iterable the WSGI server consumes."""

    __slots__ = (
        "buffered",
        "drained",
        "driving",
        "loop",
        "out",
        "start",
        "task",
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
        Call.__init__(self, opts, environ, start_response, length)
        self.loop = loop
        self.task: asyncio.Task[None] | None = None
        self.out: list[bytes] = []
        self.buffered = 0
        self.start: Start | None = None
        self.driving = False
        self.drained: asyncio.Future[None] | None = None
        self.waiters: list[asyncio.Future[None]] = []

    # -- the ASGI side: runs inside the app's task ---------------------------------------------

    async def receive(self) -> Message:
        if not (self.body_end or self.gone or self.closed):
            piece = self.read_piece()  # blocks this thread: see the module docstring
            if piece is not None:
                return {"type": "http.request", "body": piece, "more_body": not self.body_end}
            self._lose()
        elif not (self.complete or self.gone):
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
                self.out.append(data)
                self.buffered += len(data)
            if not more:
                self._complete()
            elif not data:
                return
            self._wake()
            if more and self.buffered >= self.opts.send_buffer:
                # Back-pressure: the app waits until the WSGI server has taken what is queued.
                self.drained = waiter = self.loop.create_future()
                try:
                    await waiter
                finally:
                    self.drained = None
                if self.gone:
                    raise client_gone()
        elif type(event) is Start:
            self.start = event
            self._wake()
        elif type(event) is SendFile:
            self.file_path = event.path
            self._complete()
            self._wake()

    def app_ended(self) -> None:
        self._wake()

    def _wake(self) -> None:
        # Stops the loop at the end of the current iteration: the WSGI thread gets control
        # back as soon as the app has sent something and waits (or ended). Only while this
        # request drives the loop: other requests' tasks on this loop must not stop it.
        if self.driving:
            self.loop.stop()

    def _release(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        drained = self.drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _complete(self) -> None:
        self.complete = True
        self._release()

    def _lose(self) -> None:
        """The client is gone: pending and later ``receive()`` get ``http.disconnect``."""
        self.gone = True
        self._release()
        self._wake()

    # -- the WSGI side: the server's thread drives the loop ------------------------------------

    def _drive(self) -> None:
        """Run the loop until the app sends something or ends (see `_wake`).

        ``run_forever`` rather than ``run_until_complete`` on a future: stopping from `_wake`
        ends the drive after the very iteration in which the app answered, where a future's
        done-callback would cost one more turn of the loop (and one more ``epoll_wait``).
        """
        self.driving = True
        try:
            self.loop.run_forever()
        finally:
            self.driving = False

    def begin(self, app: ASGIApp, scope: Message) -> Iterable[bytes]:
        """Start the app and run it until the response starts; return the WSGI iterable."""
        # Named, because a task without a name gets one formatted from a counter.
        self.task = self.loop.create_task(self.run(app, scope), name=TASK_NAME)
        while self.start is None and not self.app_done:
            if self.gone:
                # The body could not be read; the app has been told. Give it the grace
                # period to end, then answer for it.
                self._settle(self.opts.disconnect_grace)
                break
            self._drive()
        start = self.start
        # A body that could not be read makes the answer a 413 / 400, unless the app already
        # completed its own response.
        if start is None or ((self.too_large or self.body_failed) and not self.complete):
            body = self.fail()
            if not self.app_done:
                # The app started a response this request will not send: it is told the
                # client is gone, given the grace period to end, then cancelled; returning a
                # list (no close()) would leave its task on this thread's loop for good.
                self._lose()
                self._settle(self.opts.disconnect_grace)
                self._flush()
            self.complete = True
            return [body]
        self.start_response(start.status, start.headers)
        self.wsgi_started = True
        if self.file_path is not None:
            return self._send_file(wrap=True)
        if self.app_done and self.complete and self.late_error is None:
            # The usual case: the app answered at once. A list lets the server skip close().
            # An app that answered in full and then raised (Starlette's ServerErrorMiddleware
            # and WSGIToASGI answer 500 and raise) gets the iterable: the server sends its
            # whole page, and close() raises (`wsgi_raise_point`).
            return self.out
        return self

    def _send_file(self, *, wrap: bool) -> Iterable[bytes]:
        try:
            wrapped = self.open_file(wrap=wrap)
        except BaseException:
            # The app's error, raised to the server from the application call: no close()
            # will come, so the app's task is settled here.
            with contextlib.suppress(Exception):
                self.close()
            raise
        return self if wrapped is None else wrapped

    def queue_failure(self, body: bytes) -> None:
        self.out = [body]

    def __iter__(self) -> InlineCall:
        return self

    def __next__(self) -> bytes:
        while True:
            out = self.out
            if out:
                data = out[0] if len(out) == 1 else b"".join(out)
                out.clear()
                self.buffered = 0
                drained = self.drained
                if drained is not None and not drained.done():
                    drained.set_result(None)
                self.headers_sent = True
                return data
            file = self.file
            if file is not None:
                block = self.file_block(file)
                if block is None:
                    raise StopIteration
                return block
            if self.file_path is not None:
                # A pathsend that came after the iterable was handed over: read the file here.
                self.open_file(wrap=False)
                continue
            if self.complete:
                raise StopIteration
            if self.app_done:
                body = self.fail()
                self.complete = True
                return body
            self._drive()

    def close(self) -> None:
        """Called by the WSGI server when it is done with the response (PEP 3333)."""
        if self.closed:
            return
        self.closed = True
        self.close_file()
        if not self.complete:
            # The server stopped before the end of the body: the client is gone.
            self._lose()
        if not self.app_done:
            timeout = self.opts.background_timeout if self.complete else self.opts.disconnect_grace
            self._settle(timeout)
            self._flush()
        release(self.loop, self.opts.disconnect_grace)
        error, self.late_error = self.late_error, None
        self.raise_late(error)

    def _settle(self, timeout: float) -> None:
        """Run the loop until the app's task ends, at most ``timeout`` s; then cancel it."""
        task = self.task
        if task is None:  # pragma: no cover - begin() made it before anything can call this
            return
        self.loop.run_until_complete(asyncio.wait((task,), timeout=timeout))
        if task.done():
            return
        what = "work after the response" if self.complete else "after the client disconnected"
        _log.warning("cancelling the ASGI app: still running %g s %s", timeout, what)
        task.cancel()
        self.loop.run_until_complete(asyncio.wait((task,), timeout=max(timeout, 1.0)))
        if not task.done():
            _log.warning("the ASGI app's task ignored its cancellation; it is left behind")

    def _flush(self) -> None:
        """Run the loop a few more turns, for the clean-up the app's end scheduled.

        An async generator the app abandoned (a streaming response cut short) is finalised by a
        task the loop schedules when the generator is collected; without these turns it would
        wait for the thread's next request.
        """
        self.loop.run_until_complete(_turns())
