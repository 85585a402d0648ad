"""Lifespan fan-out for crossgate's routers (ASGI lifespan spec 2.0).

A router answers the server's lifespan protocol itself and runs it in every sub-app, each in a
task of its own with its own ``state`` namespace: startup in order, shutdown in reverse. The
pieces that start and stop are "units": the router's ``lifespan=`` context manager, its
``on_startup`` / ``on_shutdown`` hooks, then one unit per sub-app.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from crossgate._lifespan import Hook, LifespanDriver, answer_lifespan, run_hooks
from crossgate.types import ASGIReceive, ASGISend

__all__ = ["Child", "Fanout", "Hook", "Lifespan"]

_log = logging.getLogger("crossgate.routing")

Lifespan = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]
"""A ``lifespan=`` factory: called with the router, it returns an async context manager that may
yield a mapping to add to the router's state (the Starlette convention)."""


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


class _Unit(ABC):
    """Something that starts at lifespan startup and stops at shutdown."""

    @abstractmethod
    async def start(self, state: dict[str, Any]) -> str | None:
        """Start; return ``None`` on success, or a failure message."""

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
    """The router's ``on_startup`` and ``on_shutdown`` callables (`crossgate._lifespan.run_hooks`:
    startup stops at the first failure, every shutdown hook runs)."""

    def __init__(self, on_startup: Sequence[Hook], on_shutdown: Sequence[Hook]) -> None:
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown

    async def start(self, state: dict[str, Any]) -> str | None:
        return await run_hooks(self.on_startup, "on_startup")

    async def stop(self) -> str | None:
        return await run_hooks(self.on_shutdown, "on_shutdown")


class _AppUnit(_Unit):
    """One sub-app's lifespan, run by a `LifespanDriver` in a task of its own."""

    def __init__(self, child: Child, asgi: object) -> None:
        self.child = child
        self.asgi = asgi
        self.driver = LifespanDriver(child.app, name=child.name, logger=_log)

    async def start(self, state: dict[str, Any]) -> str | None:
        # Its own namespace, seeded with the router's (what the server and the router's own
        # lifespan context put there), so sub-apps never overwrite each other's keys. The
        # driver applies uvicorn's "auto" rule (crossgate.sansio.lifespan): an app that
        # raises, returns or answers otherwise (Django's ASGIHandler, a bare Channels consumer,
        # a Starlette Response) is served without lifespan, and has nothing to shut down.
        await self.driver.startup(state=dict(state), asgi=self.asgi)
        return self.driver.failure

    async def stop(self) -> str | None:
        await self.driver.shutdown()
        return self.driver.failure

    async def abort(self) -> None:
        await self.driver.abort()


class Fanout:
    """The lifespan protocol of one router, fanned out to its sub-apps.

    Startup: the ``lifespan=`` context, then the ``on_startup`` hooks, then each sub-app in
    order; the first failure stops the startup, the units already started are stopped in
    reverse, and the server gets ``lifespan.startup.failed`` with that failure's message.
    Shutdown: every started unit in reverse, each even when an earlier one failed; the first
    failures go to the server, joined, as ``lifespan.shutdown.failed``.
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
        units.extend(_AppUnit(child, asgi) for child in self.children)
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

        async def startup() -> str | None:
            error = await self._startup(units, started, state)
            if error is None:
                self._publish(units, state, shared=server_state is not None)
            return error

        try:
            await answer_lifespan(receive, send, startup, lambda: self._shutdown(started))
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
            error = await unit.start(state)
            if error is not None:
                # Shut down what already runs; the server learns of the first failure only.
                await self._shutdown(started)
                return error
            started.append(unit)
        return None

    async def _shutdown(self, started: list[_Unit]) -> str | None:
        errors = []
        while started:
            error = await started.pop().stop()
            if error is not None:
                errors.append(error)
        return "; ".join(errors) or None

    def _publish(self, units: list[_Unit], state: dict[str, Any], *, shared: bool) -> None:
        """Decide, per sub-app, whether its requests need its own state put in their scope."""
        for unit in units:
            if not isinstance(unit, _AppUnit):
                continue
            own = unit.driver.state
            # The server copies ``state`` into every request scope; when the sub-app added or
            # changed nothing, that copy is already what it needs and its scope goes through
            # untouched (no copy on the hot path).
            same = own.keys() == state.keys() and all(own[key] is state[key] for key in own)
            unit.child.state = None if same and (shared or not own) else own
