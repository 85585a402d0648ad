"""The Redis hub: live events carried between server processes by Redis pub/sub.

With ``uvicorn --workers 2`` a comment saved in one worker must reach the websockets of the
other. Each process subscribes once, to the pattern ``<prefix>*``, and fans what arrives out to
its own websockets (`Hub.deliver`); `publish` sends a message to ``<prefix><ticket id>``, and
every process, the sender included, gets it back from Redis. The pattern keeps one subscription
per process whatever the number of tickets, and puts the ticket id in the channel name, so the
payload is the websocket's text as it is.

Connections are opened lazily, on the server's loop: the publishing connection at the first
`publish`, the subscribing one at the first websocket. `stop` (lifespan shutdown) closes both.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import parse_url

from demo_projects.django_helpdesk.live.hub import QUEUE_SIZE, Hub

__all__ = ["CHANNEL_PREFIX", "RedisHub"]

_log = logging.getLogger("demo_projects.django_helpdesk.live")

CHANNEL_PREFIX: Final = "helpdesk:ticket:"

# Bounds on talking to Redis: a hub that cannot reach it fails the websocket (and logs why)
# instead of hanging the handshake or the comment form.
CONNECT_TIMEOUT: Final = 5.0


class RedisHub(Hub):
    """A `Hub` whose messages go through Redis pub/sub, so every server process gets them.

    Args:
        url: a redis-py URL: ``redis://host:port/db``, or ``unix:///path/to/redis.sock``.
        prefix: the channel name before the ticket id.
        queue_size: messages one websocket may have waiting (see `Subscription`).

    Raises:
        ValueError: the URL is not one redis-py understands, or ``queue_size`` is below 1.
    """

    def __init__(
        self, url: str, *, prefix: str = CHANNEL_PREFIX, queue_size: int = QUEUE_SIZE
    ) -> None:
        super().__init__(queue_size=queue_size)
        # Parsed now, so a bad REDIS_URL fails at start-up, not at the first comment.
        parse_url(url)
        self.url = url
        self.prefix = prefix
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"RedisHub({self.url!r})"

    def _redis(self) -> Redis:
        client = self._client
        if client is None:
            client = self._client = Redis.from_url(
                self.url,
                decode_responses=True,
                socket_connect_timeout=CONNECT_TIMEOUT,
            )
        return client

    async def _transmit(self, ticket_id: int, text: str) -> None:
        # Not delivered here: this process's own subscription brings it back, in the same
        # order as every other process sees it.
        await self._redis().publish(f"{self.prefix}{ticket_id}", text)

    async def _transmit_unbound(self, ticket_id: int, text: str) -> None:
        # No loop of ours to keep a connection on (lifespan off, nobody subscribed here yet):
        # a connection for this one message, on whatever loop this is.
        async with Redis.from_url(self.url, socket_connect_timeout=CONNECT_TIMEOUT) as client:
            await client.publish(f"{self.prefix}{ticket_id}", text)

    async def _listen(self) -> None:
        ready = self._ready
        if ready is None:
            ready = self._ready = asyncio.get_running_loop().create_future()
            # Retrieved here, so a failure nobody waits for any more is not reported as a
            # "Future exception was never retrieved" at garbage collection.
            ready.add_done_callback(lambda done: done.cancelled() or done.exception())
            pubsub = self._pubsub = self._redis().pubsub()
            self._listener = asyncio.create_task(
                self._receive(pubsub, ready), name="helpdesk-redis-listener"
            )
        # Shielded: a websocket that leaves while Redis confirms must not cancel the wait of
        # the others (nor the listener).
        await asyncio.wait_for(asyncio.shield(ready), CONNECT_TIMEOUT)

    async def _receive(self, pubsub: PubSub, ready: asyncio.Future[None]) -> None:
        """The listener task: deliver what Redis sends until the hub stops or Redis fails."""
        start = len(self.prefix)
        try:
            await pubsub.psubscribe(f"{self.prefix}*")
            message: dict[str, Any]
            async for message in pubsub.listen():
                kind = message["type"]
                if kind == "psubscribe":
                    # Redis confirms the subscription: whatever is published from now on
                    # reaches this process (Redis pub/sub keeps order per connection).
                    if not ready.done():
                        ready.set_result(None)
                elif kind == "pmessage":
                    ticket = str(message["channel"])[start:]
                    if ticket.isdigit():
                        self.deliver(int(ticket), str(message["data"]))
        except Exception as exc:
            _log.exception("the Redis subscription of %r failed; closing its websockets", self)
            if not ready.done():
                ready.set_exception(exc)
            # Pages see their websocket close and show "offline"; the next websocket to open
            # subscribes again, on a new connection.
            self.close_all("error")
            if self._pubsub is pubsub:
                self._ready = None
                self._pubsub = None
                await _close_pubsub(pubsub)
        finally:
            if not ready.done():
                # Stopped (cancelled) before Redis confirmed: the waiting websockets fail.
                ready.set_exception(RuntimeError(f"{self!r} stopped"))

    async def stop(self) -> None:
        """End every subscription, stop the listener, close both Redis connections."""
        await super().stop()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.wait((listener,))
        self._ready = None
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await _close_pubsub(pubsub)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        if pubsub is not None or client is not None:
            _log.info("%r closed its Redis connections", self)


async def _close_pubsub(pubsub: PubSub) -> None:
    """Close the subscribing connection (redis-py's ``PubSub.aclose`` has no annotations)."""
    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py 8.1
