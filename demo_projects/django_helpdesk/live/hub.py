"""The in-process hub: per-ticket fan-out of live events to the websockets of one process.

A `Hub` keeps, for each ticket, the `Subscription` of every websocket open on that ticket's
page, and `publish` puts a message in each of their queues. Everything a hub holds belongs to one
event loop, the ASGI server's: `publish` called from another loop (the persistent loop of
`crossgate.async_to_sync` in a plain thread, say) hops onto it. One process only: with several
server workers use `RedisHub`, which carries messages between processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, Literal

__all__ = ["CloseReason", "Hub", "Subscription"]

_log = logging.getLogger("demo_projects.django_helpdesk.live")

# Messages one websocket may have waiting before it counts as too slow and is closed: a page
# that cannot keep up reconnects and reloads rather than make the server buffer without bound.
QUEUE_SIZE: Final = 64

CloseReason = Literal["overflow", "shutdown", "error"]
"""Why a subscription ended: its queue overflowed, the hub stopped, or the transport failed."""


class Subscription:
    """The messages published for one ticket, for one websocket, in order.

    Iterate it (``async for text in subscription``) to get each message as the JSON text the
    websocket sends. The iteration ends when the hub closes the subscription; `reason` then says
    why. A subscription belongs to the event loop of the hub that made it.
    """

    __slots__ = ("_limit", "_pending", "_wakeup", "reason", "ticket_id")

    def __init__(self, ticket_id: int, limit: int) -> None:
        self.ticket_id = ticket_id
        self.reason: CloseReason | None = None
        self._limit = limit
        self._pending: deque[str] = deque()
        self._wakeup = asyncio.Event()

    @property
    def closed(self) -> bool:
        """Whether the hub ended this subscription (see `reason`)."""
        return self.reason is not None

    def push(self, text: str) -> None:
        """Queue ``text``; a full queue closes the subscription with reason ``"overflow"``."""
        if self.reason is not None:
            return
        if len(self._pending) >= self._limit:
            self.close("overflow")
            return
        self._pending.append(text)
        self._wakeup.set()

    def close(self, reason: CloseReason) -> None:
        """End the subscription: pending messages are dropped, the iteration stops."""
        if self.reason is None:
            self.reason = reason
            self._pending.clear()
            self._wakeup.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> str:
        while True:
            if self._pending:
                return self._pending.popleft()
            if self.reason is not None:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()


class Hub:
    """Fan-out of live events per ticket, within one process.

    ``start`` and ``stop`` run at lifespan startup and shutdown (the stages pass them to
    `crossgate.routing.ProtocolRouter` as hooks); ``subscribe`` is used by the websocket
    endpoint; ``publish`` by the ``post_save`` receiver, through `crossgate.async_to_sync`.

    Args:
        queue_size: messages one subscription may have waiting (see `Subscription`).

    Raises:
        ValueError: ``queue_size`` is below 1.
    """

    def __init__(self, *, queue_size: int = QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.queue_size = queue_size
        self._subscribers: dict[int, set[Subscription]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop this hub belongs to, once started (or first subscribed to)."""
        return self._loop

    def subscriber_count(self, ticket_id: int) -> int:
        """How many websockets of this process follow ``ticket_id``."""
        return len(self._subscribers.get(ticket_id, ()))

    async def start(self) -> None:
        """Bind the hub to the running loop (the server's). Called at lifespan startup."""
        self._bind()

    async def stop(self) -> None:
        """End every subscription (their websockets close with 1001, going away)."""
        for subscriptions in list(self._subscribers.values()):
            for subscription in list(subscriptions):
                subscription.close("shutdown")
        self._subscribers.clear()

    async def publish(self, ticket_id: int, message: Mapping[str, Any]) -> None:
        """Send ``message`` (a JSON-serialisable mapping) to every websocket on ``ticket_id``.

        Runs on the hub's loop: from another loop the call hops there and waits for it.

        Raises:
            TypeError: ``message`` cannot be serialised to JSON.
            Exception: whatever the transport raises (`RedisHub`: a `redis.RedisError`).
        """
        text = json.dumps(message, separators=(",", ":"))
        loop = self._loop
        if loop is None or loop.is_closed():
            # Never started (lifespan off) and never subscribed to: no websocket of this
            # process is listening, but a transport may still reach other processes.
            await self._transmit_unbound(ticket_id, text)
        else:
            await self._on_loop(loop, self._transmit(ticket_id, text))

    @asynccontextmanager
    async def subscribe(self, ticket_id: int) -> AsyncIterator[Subscription]:
        """Follow ``ticket_id`` for the duration of the ``async with`` block.

        When the block is entered, every message published from then on reaches the
        subscription (for `RedisHub`: Redis has confirmed the subscription), so the endpoint can
        tell its client it is live.

        Raises:
            Exception: whatever the transport raises while it starts listening.
        """
        self._bind()
        subscription = Subscription(ticket_id, self.queue_size)
        self._subscribers.setdefault(ticket_id, set()).add(subscription)
        try:
            await self._listen()
            yield subscription
        finally:
            subscriptions = self._subscribers.get(ticket_id)
            if subscriptions is not None:
                subscriptions.discard(subscription)
                if not subscriptions:
                    del self._subscribers[ticket_id]

    # -- what a transport overrides -------------------------------------------------------------

    async def _transmit(self, ticket_id: int, text: str) -> None:
        """Carry one message to its subscribers (in process: deliver it here and now)."""
        self.deliver(ticket_id, text)

    async def _transmit_unbound(self, ticket_id: int, text: str) -> None:
        """Carry one message from a hub not bound to a loop (in process: nobody to reach)."""
        _log.debug("no websocket follows ticket %s in this process; message dropped", ticket_id)

    async def _listen(self) -> None:
        """Make sure messages from other processes arrive (in process: nothing to do)."""

    # -- shared machinery ----------------------------------------------------------------------

    def deliver(self, ticket_id: int, text: str) -> None:
        """Hand ``text`` to this process's subscriptions of ``ticket_id`` (on the hub's loop)."""
        for subscription in list(self._subscribers.get(ticket_id, ())):
            subscription.push(text)
            if subscription.reason == "overflow":
                _log.warning(
                    "a websocket on ticket %s fell %s messages behind; closing it",
                    ticket_id,
                    self.queue_size,
                )

    def close_all(self, reason: CloseReason) -> None:
        """End every subscription of this process with ``reason``."""
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.close(reason)

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                f"{self!r} belongs to another event loop; each server process (and each loop) "
                "needs a hub of its own"
            )

    @staticmethod
    async def _on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` on ``loop``: here if it is the running loop, else hop there and wait."""
        if asyncio.get_running_loop() is loop:
            await coro
            return
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:
            coro.close()  # the loop closed meanwhile: the coroutine never ran
            raise
        await asyncio.wrap_future(future)
