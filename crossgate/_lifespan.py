"""Lifespan, both sides (ASGI lifespan spec 2.0): `LifespanDriver` is the server side, feeding a
`crossgate.sansio.lifespan.LifespanCycle`; `answer_lifespan` and `run_hooks` are the app side."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal

from crossgate.sansio.lifespan import UNSUPPORTED_GRACE, LifespanCycle, LifespanPhase
from crossgate.types import ASGIReceive, ASGISend, Message

__all__ = ["EXIT_GRACE", "Hook", "LifespanDriver", "Step", "answer_lifespan", "run_hooks"]

_log = logging.getLogger("crossgate")

Hook = Callable[[], object]
"""An ``on_startup`` / ``on_shutdown`` callable: plain, or returning an awaitable."""

Step = Callable[[], Awaitable[str | None]]  # a lifespan step: what failed, in words, or None

EXIT_GRACE: Final = 5.0  # seconds an app gets to return once its lifespan is over

_ASGI: Final = {"version": "3.0", "spec_version": "2.0"}


class LifespanDriver:
    """The server side of one app's lifespan, in a task of its own. `startup` and `shutdown` log
    what the app does wrong and keep it in `failure` and ``error``; they never raise for it."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        *,
        name: str = "the app",
        required: bool = False,
        logger: logging.Logger = _log,
    ) -> None:
        self.app = app
        self.name = name
        self.cycle = LifespanCycle(required=required)
        self.state: dict[str, Any] = {}
        self.messages: list[Message] = []
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None
        self._log = logger
        # A queue binds to a loop only when first used (Python 3.10+): any thread may build it.
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._answer: asyncio.Future[None] | None = None

    @property
    def failure(self) -> str | None:
        """What went wrong at `startup` or at `shutdown`, in words, or ``None``."""
        phase, reason = self.cycle.phase, self.cycle.reason
        if phase is LifespanPhase.FAILED:
            return f"{self.name} failed to start: {reason}"
        return f"{self.name} {reason}" if phase is LifespanPhase.STOPPED and reason else None

    @property
    def supported(self) -> bool:
        """False when the app does not speak lifespan and is served without it."""
        return self.cycle.phase is not LifespanPhase.UNSUPPORTED

    async def _main(self, scope: Message) -> None:
        try:
            await self.app(scope, self._inbox.get, self._send)
        except Exception as exc:
            # Kept, not raised: no task may end with an exception nobody retrieves.
            self.error = exc
        finally:
            self.cycle.ended(self.error)
            self._wake()

    async def _send(self, message: Message) -> None:
        self.messages.append(dict(message))
        try:
            # As uvicorn's send(): anything but a lifespan answer is refused here.
            self.cycle.app_sent(message)
        finally:
            self._wake()

    def _wake(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(None)

    async def _exchange(self, event: str, timeout: float | None) -> None:
        answer = self._answer = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait(self.cycle.send(event))
        await asyncio.wait((answer,), timeout=timeout)
        if not answer.done():
            self.cycle.timed_out(timeout or 0.0)

    async def startup(
        self,
        timeout: float | None = None,
        *,
        state: dict[str, Any] | None = None,
        asgi: object = None,
    ) -> None:
        if state is not None:
            self.state = state
        scope = {"type": "lifespan", "asgi": asgi or _ASGI, "state": self.state}
        self.task = asyncio.get_running_loop().create_task(self._main(scope))
        await self._exchange("lifespan.startup", timeout)
        phase, reason = self.cycle.phase, self.cycle.reason
        grace = EXIT_GRACE if timeout is None else timeout
        if phase is LifespanPhase.UNSUPPORTED:
            # ASGI lifespan spec: how an app says it has none; INFO if it took lifespan.startup.
            level = logging.INFO if self._inbox.empty() else logging.DEBUG
            self._log.log(
                level, "%s does not support lifespan (it %s); served without it", self.name, reason
            )
            await self.abort(min(grace, UNSUPPORTED_GRACE))
        elif phase is LifespanPhase.FAILED:
            self._log.error("%s", self.failure)
            # One that reported its failure ends by itself; one that timed out gets no more time.
            await self.abort(grace if self.messages else 0.0)

    async def shutdown(self, timeout: float | None = None) -> None:
        if self.cycle.phase is LifespanPhase.STOPPED:
            if self.error is not None:
                self._log.error("the lifespan of %s ended early", self.name, exc_info=self.error)
            else:
                self._log.debug("%s returned before lifespan shutdown", self.name)
            return
        if self.cycle.phase is not LifespanPhase.SERVING:
            return
        await self._exchange("lifespan.shutdown", timeout)
        reason = self.cycle.reason
        if reason:
            self._log.error("%s %s", self.name, reason, exc_info=self.error)
        elif not any(m["type"] == "lifespan.shutdown.complete" for m in self.messages):
            self._log.debug("%s returned without answering lifespan.shutdown", self.name)
        if await self.abort(EXIT_GRACE if timeout is None else timeout):
            self._log.warning("%s kept running after lifespan shutdown; cancelled it", self.name)

    async def abort(self, grace: float | None = None) -> bool:
        """Cancel the task unless it ends within ``grace`` seconds; True when it was cancelled."""
        task = self.task
        if task is None or task.done():
            return False
        if grace is not None:
            await asyncio.wait((task,), timeout=grace)
            if task.done():
                return False
        task.cancel()
        # Not `await task`: its CancelledError stays in it, and one ignoring it cannot hang us.
        await asyncio.wait((task,), timeout=EXIT_GRACE)
        return True


async def run_hooks(
    hooks: Sequence[Hook], kind: Literal["on_startup", "on_shutdown"]
) -> str | None:
    """Run lifespan hooks in order; what failed, in words, or ``None``. Startup stops at the
    first failure; every shutdown hook runs, and all failures are reported."""
    errors: list[str] = []
    for hook in hooks:
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            _log.exception("the %s hook %r failed", kind, hook)
            errors.append(f"{kind} hook {getattr(hook, '__qualname__', hook)!s} failed: {exc!r}")
            if kind == "on_startup":
                break
    return "; ".join(errors) or None


async def answer_lifespan(
    receive: ASGIReceive, send: ASGISend, startup: Step, shutdown: Step
) -> None:
    """Answer the server's lifespan events with what ``startup`` and ``shutdown`` return."""
    message = await receive()
    for event, step in (("lifespan.startup", startup), ("lifespan.shutdown", shutdown)):
        if message["type"] == event:
            error = await step()
            if error is not None:
                await send({"type": f"{event}.failed", "message": error})
                return
            await send({"type": f"{event}.complete"})
            if event == "lifespan.startup":
                message = await receive()
