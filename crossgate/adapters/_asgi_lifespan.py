"""The ASGI lifespan protocol, run by `ASGIToWSGI` once per process on its request loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

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
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        self._replies.put_nowait(dict(message))

    async def _reply(self, timeout: float) -> Message | _Ended | None:
        """The app's next message, or `_Ended`; ``None`` after ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self._replies.get(), timeout)
        except TimeoutError:
            return None

    async def startup(self, timeout: float) -> None:
        """Send ``lifespan.startup`` and wait (at most ``timeout`` seconds) for the answer.

        Never raises for what the app does: the outcome is in ``failure`` and ``supported``.
        """
        self._inbox.put_nowait({"type": "lifespan.startup"})
        scope: Message = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self.task = asyncio.get_running_loop().create_task(self._main(scope))
        reply = await self._reply(timeout)
        if isinstance(reply, _Ended):
            # ASGI lifespan spec: an app that raises (or returns) on the lifespan scope without
            # sending anything does not support lifespan; the server goes on without it. Django's
            # ASGIHandler raises ValueError here.
            reason = "returned" if reply.error is None else f"raised {reply.error!r}"
            if self.mode == "on":
                self.failure = f"the app does not support the lifespan protocol (it {reason})"
                _log.error("lifespan startup failed: %s", self.failure)
            else:
                _log.debug("the app does not support lifespan (it %s); serving without it", reason)
            self.supported = False
            return
        if reply is None:
            self.failure = f"lifespan startup did not complete within {timeout:g} s"
        elif reply.get("type") == "lifespan.startup.complete":
            return
        elif reply.get("type") == "lifespan.startup.failed":
            self.failure = f"the app's lifespan startup failed: {reply.get('message') or ''}"
        else:
            self.failure = f"unexpected lifespan message {reply.get('type')!r} at startup"
        _log.error("lifespan startup failed: %s", self.failure)
        # An app that reported its failure ends by itself (Starlette raises right after); one
        # that did not answer, or answered nonsense, is not waited for again.
        failed = reply is not None and reply.get("type") == "lifespan.startup.failed"
        await self._end(timeout if failed else 0.0)

    async def shutdown(self, timeout: float) -> None:
        """Send ``lifespan.shutdown`` and wait (bounded) for the app to answer and finish.

        Does nothing when startup never completed; never raises for what the app does.
        """
        task = self.task
        # After a failed startup the app gets no shutdown (ASGI lifespan spec), and startup
        # already saw to the end of its coroutine.
        if task is None or task.done() or self.failure is not None or not self.supported:
            self._report_early_end()
            return
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
