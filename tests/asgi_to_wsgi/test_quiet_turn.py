"""Inline mode's quiet turn: the app's ready steps run without ``run_forever`` when that is all
one iteration of the loop would do, and never when the loop has anything else to attend to."""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from crossgate.adapters._loops import quiet_turn
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from crossgate.types import ASGIReceive, ASGISend, Message
from tests.asgi_to_wsgi._apps import hello
from tests.asgi_to_wsgi.conftest import run_wsgi


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    made = asyncio.new_event_loop()
    yield made
    made.run_until_complete(made.shutdown_asyncgens())
    made.close()


async def report(seen: dict[str, Any]) -> None:
    seen["running"] = asyncio.get_running_loop()
    seen["is_running"] = seen["running"].is_running()
    seen["task"] = asyncio.current_task()
    seen["hooks"] = sys.get_asyncgen_hooks()


def test_runs_the_ready_step_as_the_loop_would(loop: asyncio.AbstractEventLoop) -> None:
    seen: dict[str, Any] = {}
    hooks = sys.get_asyncgen_hooks()
    task = loop.create_task(report(seen))
    assert quiet_turn(loop) is True
    assert task.done()
    assert seen["running"] is loop
    assert seen["is_running"] is True
    assert seen["task"] is task
    assert seen["hooks"].finalizer is not None, "the loop's async-generator hooks are set"
    # Everything is put back afterwards.
    assert not loop.is_running()
    assert asyncio._get_running_loop() is None
    assert sys.get_asyncgen_hooks() == hooks


def test_runs_only_what_was_ready_when_it_began(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []

    def first() -> None:
        calls.append("first")
        loop.call_soon(calls.append, "scheduled by first")

    loop.call_soon(first)
    loop.call_soon(calls.append, "second").cancel()
    assert quiet_turn(loop) is True
    assert calls == ["first"], "a cancelled callback is skipped, a new one waits its turn"
    assert quiet_turn(loop) is True
    assert calls == ["first", "scheduled by first"]


def test_an_abandoned_async_generator_is_finalised_on_the_loop(
    loop: asyncio.AbstractEventLoop,
) -> None:
    closed: list[str] = []

    async def numbers() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append("finally")

    async def take_one() -> None:
        generator = numbers()
        await generator.__anext__()  # abandoned after one item

    loop.run_until_complete(asyncio.sleep(0))  # the loop exists and ran once
    task = loop.create_task(take_one())
    assert quiet_turn(loop) is True
    assert task.done()
    gc.collect()
    # The loop's finaliser hook scheduled aclose() on the loop, which runs it on its next turn.
    assert closed == []
    loop.run_until_complete(asyncio.sleep(0))
    assert closed == ["finally"]


@pytest.mark.parametrize("busy", ["timer", "watched socket", "debug", "stopping"])
def test_leaves_a_loop_with_more_to_do_to_run_forever(
    loop: asyncio.AbstractEventLoop, busy: str
) -> None:
    seen: dict[str, Any] = {}
    task = loop.create_task(report(seen))
    left, right = socket.socketpair()
    try:
        if busy == "timer":
            loop.call_later(60, lambda: None)
        elif busy == "watched socket":
            loop.add_reader(left.fileno(), lambda: None)
        elif busy == "debug":
            loop.set_debug(True)
        else:
            loop.stop()
        assert quiet_turn(loop) is False
        assert not task.done(), "nothing ran"
        loop.remove_reader(left.fileno())
        loop.set_debug(False)
        loop.run_until_complete(task)
    finally:
        left.close()
        right.close()
    assert seen["running"] is loop


def test_nothing_ready_is_no_turn(loop: asyncio.AbstractEventLoop) -> None:
    assert quiet_turn(loop) is False


def test_another_loop_class_is_no_turn() -> None:
    class Custom(asyncio.SelectorEventLoop):
        pass

    custom = Custom()
    try:
        task = custom.create_task(asyncio.sleep(0))
        assert quiet_turn(custom) is False
        custom.run_until_complete(task)
    finally:
        custom.close()


def test_a_thread_running_a_loop_is_no_turn(loop: asyncio.AbstractEventLoop) -> None:
    task = loop.create_task(asyncio.sleep(0))

    async def inside_another_loop() -> bool:
        return quiet_turn(loop)

    assert asyncio.run(inside_another_loop()) is False
    loop.run_until_complete(task)


# -- through the adapter -------------------------------------------------------------------


class CountingRuns:
    """Counts ``run_forever`` calls of the default loop class."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = asyncio.SelectorEventLoop.run_forever

        def run_forever(loop: asyncio.AbstractEventLoop) -> None:
            self.calls += 1
            original(loop)  # type: ignore[arg-type]

        monkeypatch.setattr(asyncio.SelectorEventLoop, "run_forever", run_forever)


async def sleepy(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    if scope["type"] == "http":
        await asyncio.sleep(0.001)  # a timer: the quiet turn must hand over to run_forever
    await hello(scope, receive, send)


@pytest.fixture
def inline_adapter() -> Iterator[list[ASGIToWSGI]]:
    made: list[ASGIToWSGI] = []
    yield made
    for adapter in made:
        adapter.shutdown()


def test_a_request_that_needs_no_io_never_runs_the_loop(
    monkeypatch: pytest.MonkeyPatch, inline_adapter: list[ASGIToWSGI]
) -> None:
    adapter = ASGIToWSGI(hello, mode="inline")
    inline_adapter.append(adapter)
    assert run_wsgi(adapter).body == b"hello"  # the first request starts lifespan
    runs = CountingRuns(monkeypatch)
    for _ in range(3):
        result = run_wsgi(adapter)
        assert result.status == "200 OK"
        assert result.body == b"hello"
    assert runs.calls == 0


def test_a_request_that_waits_runs_the_loop(
    monkeypatch: pytest.MonkeyPatch, inline_adapter: list[ASGIToWSGI]
) -> None:
    adapter = ASGIToWSGI(sleepy, mode="inline")
    inline_adapter.append(adapter)
    assert run_wsgi(adapter).body == b"hello"
    runs = CountingRuns(monkeypatch)
    result = run_wsgi(adapter)
    assert result.body == b"hello"
    assert runs.calls >= 1
