"""The live-updates pieces in process: the hub and the websocket endpoint, without Django.

The endpoint is driven through an in-memory websocket (two queues), with a fake ticket lookup;
the real servers, the signal and the database are the other test modules' business.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from crossgate.concurrency import async_to_sync
from crossgate.types import Message
from demo_projects.django_helpdesk.live.endpoint import LiveUpdates
from demo_projects.django_helpdesk.live.hub import Hub, Subscription

WAIT = 5.0
COMMENT = {"type": "comment.created", "ticket": 7, "comment": {"id": 1, "author": "a"}}


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` on a fresh loop and check it left no task behind."""

    async def checked() -> None:
        await asyncio.wait_for(main(), WAIT * 2)
        # Let cancelled tasks finish their clean-up before looking.
        await asyncio.sleep(0)
        others = asyncio.all_tasks() - {asyncio.current_task()}
        assert not others, f"tasks left behind: {others}"

    asyncio.run(checked())


async def next_text(subscription: Subscription) -> str:
    return await asyncio.wait_for(anext(subscription), WAIT)


# -- Hub ----------------------------------------------------------------------------------------


def test_publish_reaches_the_subscribers_of_its_ticket_only() -> None:
    async def main() -> None:
        hub = Hub()
        await hub.start()
        async with (
            hub.subscribe(7) as first,
            hub.subscribe(7) as second,
            hub.subscribe(8) as other,
        ):
            await hub.publish(7, COMMENT)
            await hub.publish(8, {"n": 8})
            text = await next_text(first)
            assert json.loads(text) == COMMENT
            assert " " not in text  # compact JSON: one small frame per event
            assert await next_text(second) == text
            # The other ticket's subscriber got its own message and nothing of ticket 7's.
            assert json.loads(await next_text(other)) == {"n": 8}
            assert not other._pending
        await hub.stop()

    run(main)


def test_leaving_the_block_unsubscribes() -> None:
    async def main() -> None:
        hub = Hub()
        async with hub.subscribe(7):
            async with hub.subscribe(7):
                assert hub.subscriber_count(7) == 2
            assert hub.subscriber_count(7) == 1
        assert hub.subscriber_count(7) == 0
        assert not hub._subscribers  # no empty sets pile up per ticket
        await hub.publish(7, COMMENT)  # nobody listens: nothing happens

    run(main)


def test_a_subscription_that_falls_behind_is_closed(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        hub = Hub(queue_size=2)
        async with hub.subscribe(7) as slow:
            for n in range(3):
                await hub.publish(7, {"n": n})
            assert slow.closed
            assert slow.reason == "overflow"
            # What was pending is dropped: the page reconnects and reloads instead.
            assert [text async for text in slow] == []
            await hub.publish(7, {"n": 4})  # a closed subscription takes nothing more
            assert not slow._pending

    with caplog.at_level(logging.WARNING):
        run(main)
    assert "fell 2 messages behind" in caplog.text


def test_stop_ends_every_subscription() -> None:
    async def main() -> None:
        hub = Hub()
        await hub.start()
        async with hub.subscribe(7) as first, hub.subscribe(9) as second:
            waiting = asyncio.create_task(next_text(first))
            await asyncio.sleep(0)
            await hub.stop()
            with pytest.raises(StopAsyncIteration):
                await waiting
            assert first.reason == second.reason == "shutdown"
        assert not hub._subscribers

    run(main)


def test_publish_from_a_plain_thread_hops_onto_the_hub_loop() -> None:
    """`async_to_sync` from a thread that is not the server's runs on crossgate's own loop
    thread; the hub carries the message over to its own loop, where the queues live."""

    async def main() -> None:
        hub = Hub()
        await hub.start()
        async with hub.subscribe(7) as subscription:
            seen: list[asyncio.AbstractEventLoop | None] = []

            def in_thread() -> None:
                async def publish() -> None:
                    seen.append(asyncio.get_running_loop())
                    await hub.publish(7, COMMENT)

                async_to_sync(publish)()

            thread = threading.Thread(target=in_thread)
            thread.start()
            assert json.loads(await next_text(subscription)) == COMMENT
            await asyncio.to_thread(thread.join, WAIT)
            assert seen
            assert seen[0] is not asyncio.get_running_loop()
        await hub.stop()

    run(main)


def test_a_hub_belongs_to_one_loop() -> None:
    hub = Hub()

    async def first() -> None:
        await hub.start()

    async def second() -> None:
        loop = hub.loop
        assert loop is not None
        assert loop.is_closed()
        # The first loop is gone: a new server loop may take the hub over.
        await hub.start()
        assert hub.loop is asyncio.get_running_loop()

        def on_another_loop() -> None:
            with pytest.raises(RuntimeError, match="belongs to another event loop"):
                asyncio.run(hub.start())

        # This loop is running: another loop runs in another thread.
        await asyncio.to_thread(on_another_loop)

    asyncio.run(first())
    asyncio.run(second())


def test_publish_to_a_hub_whose_loop_closed_reaches_nobody() -> None:
    """The server loop the hub belonged to is closed (the worker is gone): a publish from
    another loop neither fails nor tries to schedule onto the dead loop."""
    hub = Hub()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(hub.start())
        publisher = asyncio.new_event_loop()
        try:
            loop.close()
            # Closed: the hub publishes as if it were unbound, reaching nobody.
            publisher.run_until_complete(hub.publish(7, COMMENT))
        finally:
            publisher.close()
    finally:
        if not loop.is_closed():
            loop.close()


def test_on_loop_closes_the_coroutine_when_the_loop_is_closed() -> None:
    closed = asyncio.new_event_loop()
    closed.close()
    ran = False

    async def work() -> None:
        nonlocal ran
        ran = True

    async def main() -> None:
        coro = work()
        with pytest.raises(RuntimeError):
            await Hub._on_loop(closed, coro)
        # Closed, so no "never awaited" warning (filterwarnings=error would fail the test).
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED

    asyncio.run(main())
    assert not ran


def test_queue_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="queue_size"):
        Hub(queue_size=0)
    assert repr(Hub()) == "Hub()"


def test_non_json_messages_are_refused() -> None:
    async def main() -> None:
        with pytest.raises(TypeError):
            await Hub().publish(7, {"when": object()})

    run(main)


# -- LiveUpdates --------------------------------------------------------------------------------


class FakeSocket:
    """The server's side of one websocket, in memory."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()

    async def receive(self) -> Message:
        return await self.inbox.get()

    async def send(self, message: Message) -> None:
        await self.outbox.put(dict(message))

    async def next_sent(self) -> Message:
        return await asyncio.wait_for(self.outbox.get(), WAIT)


def ws_scope(path: str, *, denial: bool = False) -> dict[str, Any]:
    extensions: dict[str, Any] = {"websocket.http.response": {}} if denial else {}
    return {"type": "websocket", "path": path, "extensions": extensions}


async def exists_below_100(ticket_id: int) -> bool:
    return ticket_id < 100


@asynccontextmanager
async def connected(
    app: LiveUpdates, path: str = "/ws/tickets/7/"
) -> AsyncIterator[tuple[FakeSocket, asyncio.Task[None]]]:
    """Open a websocket to ``app``; on exit, disconnect and wait for the app to return."""
    socket = FakeSocket()
    await socket.inbox.put({"type": "websocket.connect"})
    task = asyncio.create_task(app(ws_scope(path), socket.receive, socket.send))
    assert await socket.next_sent() == {"type": "websocket.accept"}
    hello = json.loads((await socket.next_sent())["text"])
    assert hello == {"type": "hello", "ticket": int(path.split("/")[3]), "pid": os.getpid()}
    try:
        yield socket, task
    finally:
        await socket.inbox.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(task, WAIT)


def test_comments_reach_the_open_websockets_of_their_ticket() -> None:
    async def main() -> None:
        hub = Hub()
        app = LiveUpdates(hub, exists=exists_below_100)
        async with (
            connected(app) as (first, _),
            connected(app) as (second, _),
            connected(app, "/ws/tickets/8/") as (other, _),
        ):
            # Subscribed before the hello went out: nothing published later is missed.
            assert hub.subscriber_count(7) == 2
            await hub.publish(7, COMMENT)
            for socket in (first, second):
                frame = await socket.next_sent()
                assert frame["type"] == "websocket.send"
                assert json.loads(frame["text"]) == COMMENT
            # What a client sends is read and ignored.
            await first.inbox.put({"type": "websocket.receive", "text": "ping"})
            await hub.publish(8, {"type": "x"})
            assert json.loads((await other.next_sent())["text"]) == {"type": "x"}
            assert first.outbox.empty()
            assert second.outbox.empty()
        # Every connection left: the hub holds no subscription.
        assert hub.subscriber_count(7) == hub.subscriber_count(8) == 0

    run(main)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/ws/other/", "no live updates at '/ws/other/'"),
        ("/ws/tickets/abc/", "no live updates at '/ws/tickets/abc/'"),
        ("/ws/tickets/0/", "no live updates at '/ws/tickets/0/'"),
        ("/ws/tickets/7", "no live updates at '/ws/tickets/7'"),
        ("/ws/tickets/7/extra/", "no live updates at '/ws/tickets/7/extra/'"),
        ("/ws/tickets/1234567890123456789/", "no live updates at"),
        ("/ws/tickets/100/", "there is no ticket 100"),
    ],
)
@pytest.mark.parametrize("denial", [True, False])
def test_unknown_paths_and_tickets_are_refused(path: str, reason: str, denial: bool) -> None:
    async def main() -> None:
        hub = Hub()
        socket = FakeSocket()
        await socket.inbox.put({"type": "websocket.connect"})
        await LiveUpdates(hub, exists=exists_below_100)(
            ws_scope(path, denial=denial), socket.receive, socket.send
        )
        first = await socket.next_sent()
        if denial:
            # The denial-response extension: a real 404, with the reason as the body.
            assert first["type"] == "websocket.http.response.start"
            assert first["status"] == 404
            body = await socket.next_sent()
            assert body["type"] == "websocket.http.response.body"
            assert reason in body["body"].decode()
        else:
            assert first["type"] == "websocket.close"
            assert first["code"] == 4404
            assert reason in first["reason"]
        assert socket.outbox.empty()
        assert not hub._subscribers

    run(main)


def test_a_client_gone_before_the_handshake_is_let_go() -> None:
    async def main() -> None:
        socket = FakeSocket()
        await socket.inbox.put({"type": "websocket.disconnect", "code": 1006})
        await LiveUpdates(Hub(), exists=exists_below_100)(
            ws_scope("/ws/tickets/7/"), socket.receive, socket.send
        )
        assert socket.outbox.empty()

    run(main)


def test_other_scope_types_are_not_served() -> None:
    """ASGI spec: an app raises for a scope type it does not serve; the router then treats
    the endpoint as having no lifespan."""

    async def main() -> None:
        socket = FakeSocket()
        with pytest.raises(ValueError, match="serves websocket connections, not 'lifespan'"):
            await LiveUpdates(Hub())({"type": "lifespan"}, socket.receive, socket.send)
        assert repr(LiveUpdates(Hub())) == "LiveUpdates(Hub())"

    run(main)


@pytest.mark.parametrize(("end", "code"), [("stop", 1001), ("overflow", 1013), ("error", 1011)])
def test_the_hub_ending_a_subscription_closes_its_websocket(end: str, code: int) -> None:
    async def main() -> None:
        hub = Hub(queue_size=1)
        app = LiveUpdates(hub, exists=exists_below_100)
        async with connected(app) as (socket, _):
            if end == "stop":
                await hub.stop()
            elif end == "overflow":
                # Two messages at once: the pump cannot take the first before the second.
                hub.deliver(7, "1")
                hub.deliver(7, "2")
            else:
                hub.close_all("error")
            frame = await socket.next_sent()
            assert frame == {"type": "websocket.close", "code": code, "reason": frame["reason"]}

    run(main)


class BrokenHub(Hub):
    """A hub whose transport cannot subscribe (Redis down, say)."""

    async def _listen(self) -> None:
        raise ConnectionError("no route to the transport")


@pytest.mark.parametrize("denial", [True, False])
def test_a_hub_that_cannot_subscribe_refuses_with_503(
    denial: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        hub = BrokenHub()
        socket = FakeSocket()
        await socket.inbox.put({"type": "websocket.connect"})
        await LiveUpdates(hub, exists=exists_below_100)(
            ws_scope("/ws/tickets/7/", denial=denial), socket.receive, socket.send
        )
        first = await socket.next_sent()
        if denial:
            assert first["status"] == 503
            await socket.next_sent()
        else:
            assert first["code"] == 4503
        assert not hub._subscribers

    with caplog.at_level(logging.ERROR):
        run(main)
    assert "could not follow ticket 7" in caplog.text
    assert "no route to the transport" in caplog.text


@pytest.mark.parametrize(
    ("error", "logged"),
    [
        # ASGI spec: send on a closed connection raises an OSError: the client simply left.
        (OSError("connection reset"), False),
        # Anything else is a bug worth an error in the log.
        (RuntimeError("unexpected ASGI message"), True),
    ],
)
def test_a_failing_send_ends_the_connection_cleanly(
    error: Exception, logged: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        hub = Hub()
        socket = FakeSocket()
        sent: list[Message] = []

        async def send(message: Message) -> None:
            if message["type"] == "websocket.send" and "comment.created" in message["text"]:
                raise error
            sent.append(message)

        await socket.inbox.put({"type": "websocket.connect"})
        task = asyncio.create_task(
            LiveUpdates(hub, exists=exists_below_100)(
                ws_scope("/ws/tickets/7/"), socket.receive, send
            )
        )
        while hub.subscriber_count(7) == 0 or len(sent) < 2:
            await asyncio.sleep(0.01)
        await hub.publish(7, COMMENT)
        # The server reports the disconnect the failed send stumbled on.
        await socket.inbox.put({"type": "websocket.disconnect", "code": 1006})
        await asyncio.wait_for(task, WAIT)
        assert hub.subscriber_count(7) == 0

    with caplog.at_level(logging.DEBUG, logger="demo_projects.django_helpdesk.live"):
        run(main)
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    if logged:
        assert [record.getMessage() for record in errors] == [
            "sending live updates for ticket 7 failed"
        ]
    else:
        assert not errors
        assert "left mid-send" in caplog.text


def test_cancelling_the_connection_stops_its_pump() -> None:
    """A server that cancels the app's task (shutdown) leaves no pump task behind."""

    async def main() -> None:
        hub = Hub()
        socket = FakeSocket()
        await socket.inbox.put({"type": "websocket.connect"})
        task = asyncio.create_task(
            LiveUpdates(hub, exists=exists_below_100)(
                ws_scope("/ws/tickets/7/"), socket.receive, socket.send
            )
        )
        await socket.next_sent()
        await socket.next_sent()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert hub.subscriber_count(7) == 0

    run(main)
