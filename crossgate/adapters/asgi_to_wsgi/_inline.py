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
import logging
from collections.abc import Callable
from typing import TypeVarTuple

from crossgate.adapters.asgi_to_wsgi._call import LOST, AppCall, Emitted, Options
from crossgate.adapters.asgi_to_wsgi._loops import release
from crossgate.sansio.asgi_call_state import InputPhase, ServerPhase
from crossgate.types import ASGIApp, Message, StartResponse, WSGIEnvironment

__all__ = ["TASK_NAME", "InlineCall"]

_log = logging.getLogger("crossgate")

# The name of every request's task (asyncio.Task.get_name()).
TASK_NAME = "crossgate-asgi-request"

Ts = TypeVarTuple("Ts")


async def _turns() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


class InlineCall(AppCall):
    """One request in inline mode: the loop side and the WSGI side are one thread."""

    __slots__ = ("driving",)

    def __init__(
        self,
        opts: Options,
        loop: asyncio.AbstractEventLoop,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        length: int | None,
    ) -> None:
        super().__init__(opts, loop, environ, start_response, length)
        self.driving = False

    def start_task(self, app: ASGIApp, scope: Message) -> bool:
        # Named, because a task without a name gets one formatted from a counter.
        self.task = self.loop.create_task(self.run(app, scope), name=TASK_NAME)
        return True

    async def next_piece(self) -> tuple[bytes, bool] | None:
        if (
            self.body is not InputPhase.READING
            or self.server is ServerPhase.CLOSED
            or self.response in LOST
        ):
            return None
        piece = self.read_piece()  # blocks this thread: see the module docstring
        if piece is None:
            self.lose()
            return None
        return piece, self.body is InputPhase.READING

    def emit(self, item: Emitted) -> None:
        self.take(item)
        # Stop the loop at the end of the current iteration: the WSGI thread gets control back
        # as soon as the app has sent something and waits (or ended). Only while this request
        # drives the loop: other requests' tasks on this loop must not stop it.
        if self.driving:
            self.loop.stop()

    def timebox(self, timeout: float) -> None:
        # The WSGI side bounds the app's remaining time itself (`settle`) once it has control.
        if self.driving:
            self.loop.stop()

    def call_on_loop(self, callback: Callable[[*Ts], object], *args: *Ts) -> None:
        callback(*args)

    def wait(self) -> None:
        """Run the loop until the app sends something or ends (see `emit`).

        ``run_forever`` rather than ``run_until_complete`` on a future: stopping from `emit`
        ends the drive after the very iteration in which the app answered, where a future's
        done-callback would cost one more turn of the loop (and one more ``epoll_wait``).
        """
        if self.gone:
            # The body could not be read; the app has been told. Give it the grace period to
            # end, then answer for it.
            self.settle(self.opts.disconnect_grace)
            self.done_seen = True
            return
        self.driving = True
        try:
            self.loop.run_forever()
        finally:
            self.driving = False

    def finish(self) -> None:
        if not self.complete:
            # The server stopped before the end of the body: the client is gone.
            self.lose()
        if not self.done_seen:
            timeout = self.opts.background_timeout if self.complete else self.opts.disconnect_grace
            self.settle(timeout)
            self.flush()
        release(self.loop, self.opts.disconnect_grace)

    def settle(self, timeout: float) -> None:
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

    def flush(self) -> None:
        """Run the loop a few more turns, for the clean-up the app's end scheduled.

        An async generator the app abandoned (a streaming response cut short) is finalised by a
        task the loop schedules when the generator is collected; without these turns it would
        wait for the thread's next request.
        """
        self.loop.run_until_complete(_turns())
