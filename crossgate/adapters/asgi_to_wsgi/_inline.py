"""Inline mode: the WSGI thread runs the ASGI app on its own event loop, with no hand-off.

The loop runs only inside the WSGI calls: until the response starts, until the next body chunk,
and in ``close()`` while the app ends (bounded). ``receive()`` reads ``wsgi.input`` while the
loop runs: that blocks the loop, but this thread serves only this request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVarTuple

from crossgate.adapters.asgi_to_wsgi._call import LOST, AppCall, Emitted
from crossgate.adapters.asgi_to_wsgi._loops import release
from crossgate.sansio.asgi_call_state import InputPhase, ServerPhase
from crossgate.types import ASGIApp, Message

__all__ = ["TASK_NAME", "InlineCall"]

_log = logging.getLogger("crossgate")

# Every request's task's name: a task without one gets one formatted from a counter.
TASK_NAME = "crossgate-asgi-request"

Ts = TypeVarTuple("Ts")


async def _turns() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


class InlineCall(AppCall):
    """One request in inline mode: the loop side and the WSGI side are one thread."""

    def start_task(self, app: ASGIApp, scope: Message) -> bool:
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
        # The WSGI thread gets control back after this iteration of the loop. Only while this
        # request drives the loop: other requests' leftover tasks must not stop it.
        if self.driving:
            self.loop.stop()

    def timebox(self, timeout: float) -> None:
        if self.driving:  # the WSGI side bounds the app itself once it has control (`settle`)
            self.loop.stop()

    def call_on_loop(self, callback: Callable[[*Ts], object], *args: *Ts) -> None:
        callback(*args)

    def wait(self) -> None:
        # run_forever, stopped by `emit`, rather than run_until_complete on a future, whose
        # done-callback would cost one more turn of the loop (one more epoll_wait).
        if self.gone:  # the body could not be read: the app has its grace period to end
            self.settle(self.opts.disconnect_grace)
            self.done_seen = True
            return
        self.driving = True
        try:
            self.loop.run_forever()
        finally:
            self.driving = False

    def finish(self) -> None:
        if not self.complete:  # the server stopped before the end of the body
            self.lose()
        if not self.done_seen:
            timeout = self.opts.background_timeout if self.complete else self.opts.disconnect_grace
            self.settle(timeout)
            # A few more turns, for the clean-up the app's end scheduled (an abandoned async
            # generator is finalised by a task), which would otherwise wait for the next request.
            self.loop.run_until_complete(_turns())
        release(self.loop, self.opts.disconnect_grace)

    def settle(self, timeout: float) -> None:
        """Run the loop until the app's task ends, at most ``timeout`` s; then cancel it."""
        task = self.task
        assert task is not None  # begin() made it before anything can call this
        self.loop.run_until_complete(asyncio.wait((task,), timeout=timeout))
        if task.done():
            return
        self.cancel(task, timeout)
        self.loop.run_until_complete(asyncio.wait((task,), timeout=max(timeout, 1.0)))
        if not task.done():
            _log.warning("the ASGI app's task ignored its cancellation; it is left behind")
