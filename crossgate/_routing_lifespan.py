"""Lifespan fan-out for crossgate's routers (ASGI lifespan spec 2.0).

A router answers the server's lifespan protocol itself and runs it in every sub-app, each in a
task of its own with its own ``state`` namespace: startup in order, shutdown in reverse. The
pieces that start and stop are "units": the router's ``lifespan=`` context manager, its
``on_startup`` / ``on_shutdown`` hooks, then one unit per sub-app.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

from crossgate.sansio.lifespan import (
    UNSUPPORTED_GRACE,
    StartupOutcome,
    check_answer,
    judge_startup,
)
from crossgate.types import ASGIReceive, ASGISend, Message

__all__ = ["Child", "Fanout", "Hook", "Lifespan"]

_log = logging.getLogger("crossgate.routing")

Hook = Callable[[], object]
"""An ``on_startup`` / ``on_shutdown`` callable: plain, or returning an awaitable."""

Lifespan = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]
"""A ``lifespan=`` factory: called with the router, it returns an async context manager that may
yield a mapping to add to the router's state (the Starlette convention)."""

# How long a sub-app may take to return once it has answered lifespan.shutdown before its task
# is cancelled; a well-behaved app returns on the next turn of the loop.
EXIT_GRACE: Final = 5.0


class Child:
    """One sub-app of a router, as the router calls it, and the state its requests get.

    ``state`` is ``None`` when requests can go to the app with the scope they came in with; it
    is the app's own lifespan namespace when that differs from what the server hands the
    router, and the router then puts a shallow copy of it in each request's scope (ASGI spec:
    a request's ``state`` is a copy of its lifespan's namespace).
    """

    __slots__ = ("app", "name", "state")

    def __init__(self, app: Callable[..., Any], name: str) -> None:
        self.app = app
        self.name = name
        self.state: dict[str, Any] | None = None


class _Skipped:
    """A sub-app that does not take part in lifespan: nothing to shut down."""


_SKIPPED: Final = _Skipped()


class _Unit(ABC):
    """Something that starts at lifespan startup and stops at shutdown."""

    @abstractmethod
    async def start(self, state: dict[str, Any]) -> str | _Skipped | None:
        """Start; return ``None`` on success, a failure message, or `_SKIPPED`."""

    @abstractmethod
    async def stop(self) -> str | None:
        """Stop; return ``None`` on success or a failure message."""

    async def abort(self) -> None:  # noqa: B027 - most units have nothing left running
        """Drop whatever is still running (the lifespan task itself was cancelled)."""


class _ContextUnit(_Unit):
    """The router's ``lifespan=`` async context manager."""

    def __init__(self, factory: Lifespan, owner: object) -> None:
        self.factory = factory
        self.owner = owner
        self.manager: AbstractAsyncContextManager[Mapping[str, Any] | None] | None = None

    async def start(self, state: dict[str, Any]) -> str | None:
        try:
            manager = self.factory(self.owner)
            value = await manager.__aenter__()
        except Exception as exc:
            _log.exception("the lifespan context of %r failed to start", self.owner)
            return f"the lifespan context failed to start: {exc!r}"
        self.manager = manager
        if value is not None:
            # Starlette's convention: the yielded mapping joins the lifespan state.
            state.update(value)
        return None

    async def stop(self) -> str | None:
        manager, self.manager = self.manager, None
        if manager is None:  # pragma: no cover - only started units are stopped
            return None
        try:
            await manager.__aexit__(None, None, None)
        except Exception as exc:
            _log.exception("the lifespan context of %r failed to stop", self.owner)
            return f"the lifespan context failed to stop: {exc!r}"
        return None


class _HooksUnit(_Unit):
    """The router's ``on_startup`` and ``on_shutdown`` callables."""

    def __init__(self, on_startup: Sequence[Hook], on_shutdown: Sequence[Hook]) -> None:
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown

    async def start(self, state: dict[str, Any]) -> str | None:
        for hook in self.on_startup:
            error = await _run_hook(hook, "on_startup")
            if error is not None:
                return error
        return None

    async def stop(self) -> str | None:
        # Every shutdown hook runs even when one fails: each may hold its own resource.
        first = None
        for hook in self.on_shutdown:
            error = await _run_hook(hook, "on_shutdown")
            first = first or error
        return first


async def _run_hook(hook: Hook, kind: str) -> str | None:
    try:
        result = hook()
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        _log.exception("the %s hook %r failed", kind, hook)
        return f"{kind} hook {getattr(hook, '__qualname__', hook)!s} failed: {exc!r}"
    return None


class _ChildUnit(_Unit):
    """Runs one sub-app's lifespan in a task of its own and talks to it through a queue."""

    def __init__(self, child: Child, asgi: object) -> None:
        self.child = child
        self.asgi = asgi
        self.state: dict[str, Any] = {}
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.reply: asyncio.Future[Message] | None = None
        self.waiting = "lifespan.startup"
        self.received = False
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    # -- the sub-app's side ---------------------------------------------------------------------

    async def _main(self, scope: dict[str, Any]) -> None:
        try:
            await self.child.app(scope, self._receive, self._send)
        except Exception as exc:
            # Kept, not raised: the task must never end with an exception nobody retrieves.
            self.error = exc

    async def _receive(self) -> Message:
        self.received = True
        return await self.inbox.get()

    async def _send(self, message: Message) -> None:
        reply = self.reply
        waiting = None if reply is None or reply.done() else self.waiting
        if waiting is not None and reply is not None:
            # The router judges whatever came first, a wrong answer included.
            reply.set_result(dict(message))
        # uvicorn's send() asserts the same: a sub-app that answers with anything but a
        # lifespan answer (a Starlette Response sends http.response.start) stops here.
        check_answer(waiting, message)

    # -- the router's side ----------------------------------------------------------------------

    async def _exchange(self, task: asyncio.Task[None], event: str) -> Message | None:
        """Send ``event`` to the sub-app running in ``task``; its answer, or ``None`` when it
        returned or raised instead."""
        reply = self.reply = asyncio.get_running_loop().create_future()
        self.waiting = event
        self.inbox.put_nowait({"type": event})
        await asyncio.wait((reply, task), return_when=asyncio.FIRST_COMPLETED)
        return reply.result() if reply.done() else None

    async def start(self, state: dict[str, Any]) -> str | _Skipped | None:
        # Its own namespace, seeded with the router's (what the server and the router's own
        # lifespan context put there), so sub-apps never overwrite each other's keys.
        self.state = dict(state)
        scope = {"type": "lifespan", "asgi": self.asgi, "state": self.state}
        task = self.task = asyncio.get_running_loop().create_task(self._main(scope))
        answer = await self._exchange(task, "lifespan.startup")
        name = self.child.name
        # uvicorn's "auto" rule (crossgate.sansio.lifespan): only lifespan.startup.failed fails
        # the startup; a sub-app that raises, returns or answers with something else (Django's
        # ASGIHandler raises at once, a bare Channels consumer raises "No handler for message
        # type lifespan.startup", a Starlette Response sends http.response.start) does not
        # support lifespan and is served without it.
        verdict = judge_startup(answer, error=self.error)
        if verdict.outcome is StartupOutcome.COMPLETE:
            return None
        if verdict.outcome is StartupOutcome.FAILED:
            _log.error("%s failed to start: %s", name, verdict.reason)
            return f"{name} failed to start: {verdict.reason}"
        # One line per startup, without a traceback: not an error. INFO when the sub-app took
        # the event (it may have meant to answer), DEBUG when it never even asked for it.
        level = logging.INFO if self.received else logging.DEBUG
        _log.log(level, "%s does not support lifespan (it %s); skipped", name, verdict.reason)
        if not task.done():
            # Its send() just raised: it ends on this turn of the loop, or is cancelled.
            await asyncio.wait((task,), timeout=UNSUPPORTED_GRACE)
            await self.abort()
        return _SKIPPED

    async def stop(self) -> str | None:
        task = self.task
        name = self.child.name
        if task is None or task.done():
            _log.debug("%s returned before lifespan shutdown; nothing to shut down", name)
            return None
        answer = await self._exchange(task, "lifespan.shutdown")
        error: str | None = None
        if answer is None:
            if self.error is not None:
                _log.error("%s raised during lifespan shutdown", name, exc_info=self.error)
                error = f"{name} raised during shutdown: {self.error!r}"
            else:
                _log.debug("%s returned without answering lifespan.shutdown", name)
        elif answer.get("type") == "lifespan.shutdown.failed":
            message = str(answer.get("message", ""))
            _log.error("%s failed to shut down: %s", name, message)
            error = f"{name} failed to shut down: {message}"
        elif answer.get("type") != "lifespan.shutdown.complete":
            _log.error("%s answered lifespan.shutdown with %r", name, answer.get("type"))
            error = f"{name} answered lifespan.shutdown with {answer.get('type')!r}"
        await asyncio.wait((task,), timeout=EXIT_GRACE)
        if not task.done():
            _log.warning("%s kept running after lifespan shutdown; cancelled it", name)
            await self.abort()
        return error

    async def abort(self) -> None:
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            # asyncio.wait, not `await task`: the sub-app's CancelledError stays in its task,
            # while a cancellation of this task still propagates.
            await asyncio.wait((task,), timeout=EXIT_GRACE)


class Fanout:
    """The lifespan protocol of one router, fanned out to its sub-apps.

    Startup: the ``lifespan=`` context, then the ``on_startup`` hooks, then each sub-app in
    order; the first failure stops the startup, the units already started are stopped in
    reverse, and the server gets ``lifespan.startup.failed`` with that failure's message.
    Shutdown: every started unit in reverse, each even when an earlier one failed; the first
    failure goes to the server as ``lifespan.shutdown.failed``.
    """

    def __init__(
        self,
        owner: object,
        children: Sequence[Child],
        on_startup: Sequence[Hook],
        on_shutdown: Sequence[Hook],
        lifespan: Lifespan | None,
    ) -> None:
        self.owner = owner
        self.children = children
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.lifespan = lifespan

    def _units(self, asgi: object) -> list[_Unit]:
        units: list[_Unit] = []
        if self.lifespan is not None:
            units.append(_ContextUnit(self.lifespan, self.owner))
        if self.on_startup or self.on_shutdown:
            units.append(_HooksUnit(self.on_startup, self.on_shutdown))
        units.extend(_ChildUnit(child, asgi) for child in self.children)
        return units

    async def __call__(
        self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend
    ) -> None:
        server_state = scope.get("state")
        # Without a "state" key the server does not support lifespan state (ASGI lifespan
        # spec); the router keeps a namespace of its own all the same.
        state: dict[str, Any] = server_state if server_state is not None else {}
        units = self._units(scope.get("asgi") or {"version": "3.0", "spec_version": "2.0"})
        started: list[_Unit] = []
        try:
            message = await receive()
            if message["type"] == "lifespan.startup":
                error = await self._startup(units, started, state)
                if error is not None:
                    await send({"type": "lifespan.startup.failed", "message": error})
                    return
                self._publish(units, state, shared=server_state is not None)
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            if message["type"] == "lifespan.shutdown":
                error = await self._shutdown(started)
                if error is not None:
                    await send({"type": "lifespan.shutdown.failed", "message": error})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
        finally:
            # Normally nothing is left running here; after a cancellation (the server gave up
            # on lifespan) the sub-apps' tasks must not outlive the router's.
            for unit in reversed(units):
                await unit.abort()

    async def _startup(
        self, units: list[_Unit], started: list[_Unit], state: dict[str, Any]
    ) -> str | None:
        for child in self.children:
            child.state = None
        for unit in units:
            outcome = await unit.start(state)
            if isinstance(outcome, str):
                # Shut down what already runs; the server learns of the first failure only.
                await self._shutdown(started)
                return outcome
            if outcome is None:
                started.append(unit)
        return None

    async def _shutdown(self, started: list[_Unit]) -> str | None:
        first = None
        while started:
            error = await started.pop().stop()
            first = first or error
        return first

    def _publish(self, units: list[_Unit], state: dict[str, Any], *, shared: bool) -> None:
        """Decide, per sub-app, whether its requests need its own state put in their scope."""
        for unit in units:
            if not isinstance(unit, _ChildUnit):
                continue
            own = unit.state
            # The server copies ``state`` into every request scope; when the sub-app added or
            # changed nothing, that copy is already what it needs and its scope goes through
            # untouched (no copy on the hot path).
            same = own.keys() == state.keys() and all(own[key] is state[key] for key in own)
            unit.child.state = None if same and (shared or not own) else own
