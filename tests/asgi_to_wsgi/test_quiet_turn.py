"""Inline mode's quiet turn: the app's ready steps run without ``run_forever`` when that is all
one iteration of the loop would do, and never when the loop has anything else to attend to."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from crossgate.adapters import _loops
from crossgate.adapters._asgi_inline import TASK_NAME
from crossgate.adapters._loops import InlineLoop, new_inline_loop, quiet_turn
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from crossgate.types import ASGIReceive, ASGISend, Message
from tests.asgi_to_wsgi._apps import hello
from tests.asgi_to_wsgi.conftest import run_wsgi


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    made = new_inline_loop()
    assert type(made) is InlineLoop
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


class Custom(InlineLoop):
    pass


@pytest.mark.parametrize("kind", [asyncio.SelectorEventLoop, Custom])
def test_another_loop_class_is_no_turn(kind: type[asyncio.AbstractEventLoop]) -> None:
    custom = kind()
    try:
        task = custom.create_task(asyncio.sleep(0))
        assert quiet_turn(custom) is False
        custom.run_until_complete(task)
    finally:
        custom.close()


# -- InlineLoop --------------------------------------------------------------------------


def test_call_soon_queues_handles_as_asyncio_does(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[tuple[str, object]] = []
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    context = contextvars.copy_context()
    context.run(var.set, "given")

    def record(name: str) -> None:
        calls.append((name, var.get()))

    var.set("caller's")
    first = loop.call_soon(record, "first")
    dropped = loop.call_soon(record, "dropped")
    loop.call_soon(record, "with context", context=context)
    assert isinstance(first, asyncio.Handle)
    dropped.cancel()
    assert dropped.cancelled()
    var.set("changed after")  # a handle runs in a copy of the context it was made in
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [("first", "caller's"), ("with context", "given")]
    assert "record" in repr(first)


def test_call_soon_on_a_closed_loop_raises() -> None:
    closed = new_inline_loop()
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        closed.call_soon(print)


def test_call_soon_in_debug_mode_is_asyncios_own(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(True)
    handle = loop.call_soon(print)
    assert handle._source_traceback  # type: ignore[attr-defined]  # recorded in debug mode
    handle.cancel()
    loop.set_debug(False)
    plain = loop.call_soon(print)
    assert plain._source_traceback is None  # type: ignore[attr-defined]
    plain.cancel()


def test_call_soon_of_another_handle_layout_is_asyncios_own(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[object] = []
    original = asyncio.BaseEventLoop.call_soon

    def call_soon(self: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(asyncio.BaseEventLoop, "call_soon", call_soon)
    monkeypatch.setattr(_loops, "_FILL_HANDLES", False)
    loop.call_soon(print).cancel()
    assert made == [print]


def test_new_inline_loop_honours_an_applications_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Own(asyncio.SelectorEventLoop):
        pass

    class Policy(asyncio.DefaultEventLoopPolicy):
        _loop_factory = Own

    monkeypatch.setattr(asyncio.events, "_event_loop_policy", Policy())
    own = new_inline_loop()
    try:
        assert type(own) is Own  # uvloop's policy, say: its loop, not crossgate's
    finally:
        own.close()


def test_a_requests_task_is_named(inline_adapter: list[ASGIToWSGI]) -> None:
    names: list[str] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http":
            task = asyncio.current_task()
            assert task is not None
            names.append(task.get_name())
        await hello(scope, receive, send)

    adapter = ASGIToWSGI(app, mode="inline")
    inline_adapter.append(adapter)
    assert run_wsgi(adapter).body == b"hello"
    assert names == [TASK_NAME]


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
