"""The ASGI lifespan protocol, run by `ASGIToWSGI` once per process on its request loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from crossgate.sansio.lifespan import (
    UNSUPPORTED_GRACE,
    StartupOutcome,
    check_answer,
    judge_startup,
)
from crossgate.types import ASGIApp, Message

__all__ = ["Lifespan"]

_log = logging.getLogger("crossgate")


class _Ended:
    """Put in the reply queue when the app's lifespan coroutine returns or raises."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class Lifespan:
    """One run of the ASGI lifespan protocol (ASGI lifespan spec 2.0).

    The coroutines run on the loop the requests of this process run on, so that what the app
    sets up at startup (a database pool bound to a loop) works in every request.

    After `startup`: ``failure`` is ``None`` when requests may be served, else the reason to log
    with every 500; ``state`` is the lifespan state each request scope gets a copy of;
    ``supported`` is false when the app does not speak lifespan.
    """

    def __init__(self, app: ASGIApp, mode: Literal["auto", "on"]) -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.failure: str | None = None
        self.supported = True
        self.task: asyncio.Task[None] | None = None
        # The lifespan event waiting for the app's answer, for send() to check against, and
        # whether the app ever called receive() (an app that did may have meant to speak
        # lifespan, so its not doing so is worth an INFO line rather than a DEBUG one).
        self._waiting: str | None = None
        self._received = False
        # Since Python 3.10 a queue binds to a loop only when first used, so these can be made
        # here, on whatever thread builds the adapter's process state.
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._replies: asyncio.Queue[Message | _Ended] = asyncio.Queue()

    async def _main(self, scope: Message) -> None:
        error: BaseException | None = None
        try:
            await self.app(scope, self._receive, self._send)
        except Exception as exc:
            error = exc
        finally:
            self._replies.put_nowait(_Ended(error))

    async def _receive(self) -> Message:
        self._received = True
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        # The driver sees every message, the wrong ones included (to judge and log them).
        self._replies.put_nowait(dict(message))
        waiting, self._waiting = self._waiting, None
        # uvicorn's send() asserts the same: an app that answers a lifespan event with anything
        # else (an HTTP response) stops here, instead of running on with its scope unanswered.
        check_answer(waiting, message)

    async def _reply(self, timeout: float) -> Message | _Ended | None:
        """The app's next message, or `_Ended`; ``None`` after ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self._replies.get(), timeout)
        except TimeoutError:
            return None

    async def startup(self, timeout: float) -> None:
        """Send ``lifespan.startup`` and wait (at most ``timeout`` seconds) for the answer.

        Never raises for what the app does: the outcome is in ``failure`` and ``supported``,
        decided by `crossgate.sansio.lifespan.judge_startup` (uvicorn's "auto" rule).
        """
        self._waiting = "lifespan.startup"
        self._inbox.put_nowait({"type": "lifespan.startup"})
        scope: Message = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self.task = asyncio.get_running_loop().create_task(self._main(scope))
        reply = await self._reply(timeout)
        if reply is None:
            self.failure = f"lifespan startup did not complete within {timeout:g} s"
            _log.error("lifespan startup failed: %s", self.failure)
            # Not waited for again: it had its time.
            await self._end(0.0)
            return
        if isinstance(reply, _Ended):
            verdict = judge_startup(None, error=reply.error, required=self.mode == "on")
        else:
            verdict = judge_startup(reply, required=self.mode == "on")
        if verdict.outcome is StartupOutcome.COMPLETE:
            return
        if verdict.outcome is StartupOutcome.UNSUPPORTED:
            # Once per process, with the reason and no traceback: this is how an app says it
            # has no lifespan (ASGI lifespan spec), not an error.
            level = logging.INFO if self._received else logging.DEBUG
            _log.log(
                level,
                "the app does not support lifespan (it %s); serving without it",
                verdict.reason,
            )
            self.supported = False
            # Its send() raised, so it is ending: no task is left pending behind it.
            await self._end(min(timeout, UNSUPPORTED_GRACE))
            return
        reported = not isinstance(reply, _Ended) and reply.get("type") == "lifespan.startup.failed"
        self.failure = (
            f"the app's lifespan startup failed: {verdict.reason}" if reported else verdict.reason
        )
        _log.error("lifespan startup failed: %s", self.failure)
        # An app that reported its failure ends by itself (Starlette raises right after); one
        # that answered nonsense is not waited for again.
        await self._end(timeout if reported else 0.0)

    async def shutdown(self, timeout: float) -> None:
        """Send ``lifespan.shutdown`` and wait (bounded) for the app to answer and finish.

        Does nothing when startup never completed; never raises for what the app does.
        """
        task = self.task
        # After a failed startup the app gets no shutdown (ASGI lifespan spec), and startup
        # already saw to the end of its coroutine.
        # Nor does an app without lifespan support, whose coroutine ended at startup.
        if task is None or self.failure is not None or not self.supported:
            return
        if task.done():
            self._report_early_end()
            return
        self._waiting = "lifespan.shutdown"
        self._inbox.put_nowait({"type": "lifespan.shutdown"})
        reply = await self._reply(timeout)
        if isinstance(reply, _Ended):
            if reply.error is not None:
                _log.error("the app's lifespan failed at shutdown", exc_info=reply.error)
        elif reply is None:
            _log.warning("lifespan shutdown did not complete within %g s", timeout)
        elif reply.get("type") == "lifespan.shutdown.failed":
            _log.error("the app's lifespan shutdown failed: %s", reply.get("message") or "")
        elif reply.get("type") != "lifespan.shutdown.complete":
            _log.error("unexpected lifespan message %r at shutdown", reply.get("type"))
        await self._end(timeout)

    def _report_early_end(self) -> None:
        # The lifespan coroutine ended while the app was serving: say why, at shutdown.
        while not self._replies.empty():
            reply = self._replies.get_nowait()
            if isinstance(reply, _Ended) and reply.error is not None:
                _log.error("the app's lifespan ended with an error", exc_info=reply.error)

    async def _end(self, timeout: float) -> None:
        """Let the lifespan coroutine finish, cancelling it if it outlives ``timeout``."""
        task = self.task
        if task is None or task.done():
            return
        _, pending = await asyncio.wait((task,), timeout=timeout)
        if pending:
            task.cancel()
            # Bounded even for a coroutine that ignores its cancellation.
            await asyncio.wait((task,), timeout=max(timeout, 1.0))
