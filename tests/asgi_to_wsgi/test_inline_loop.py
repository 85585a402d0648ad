"""Inline mode's loop: the app runs on a loop of the WSGI thread, as asyncio runs any task,
with a stopped loop between requests."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from crossgate.adapters.asgi_to_wsgi._call import TASK_NAME
from crossgate.types import ASGIReceive, ASGISend, Message
from tests.asgi_to_wsgi._apps import hello
from tests.asgi_to_wsgi.conftest import run_wsgi


@pytest.fixture
def inline_adapter() -> Iterator[list[ASGIToWSGI]]:
    made: list[ASGIToWSGI] = []
    yield made
    for adapter in made:
        adapter.shutdown()


def serve(made: list[ASGIToWSGI], app: Any) -> ASGIToWSGI:
    adapter = ASGIToWSGI(app, mode="inline")
    made.append(adapter)
    return adapter


def test_the_app_runs_as_a_task_of_a_running_loop(inline_adapter: list[ASGIToWSGI]) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http":
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            assert task is not None
            seen.append(
                {
                    "loop": loop,
                    "running": loop.is_running(),
                    "name": task.get_name(),
                    "finalizer": sys.get_asyncgen_hooks().finalizer,
                }
            )
        await hello(scope, receive, send)

    adapter = serve(inline_adapter, app)
    hooks = sys.get_asyncgen_hooks()
    for _ in range(2):
        assert run_wsgi(adapter).body == b"hello"
    assert [s["name"] for s in seen] == [TASK_NAME, TASK_NAME]
    assert all(s["running"] and s["finalizer"] is not None for s in seen)
    assert seen[0]["loop"] is seen[1]["loop"], "one loop per thread, kept between requests"
    # Nothing of the loop stays installed on the thread between requests.
    assert not seen[0]["loop"].is_running()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    assert sys.get_asyncgen_hooks() == hooks


def test_an_abandoned_async_generator_is_finalised_on_the_threads_loop(
    inline_adapter: list[ASGIToWSGI],
) -> None:
    closed: list[str] = []

    async def numbers() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append("finally")

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http" and scope["path"] == "/abandon":
            generator = numbers()
            await generator.__anext__()  # abandoned after one item
            del generator
            gc.collect()
        await hello(scope, receive, send)

    adapter = serve(inline_adapter, app)
    assert run_wsgi(adapter, path="/abandon").body == b"hello"
    # The loop's finaliser hook (PEP 525) scheduled aclose() on the loop, which runs it on its
    # next turns: while the thread serves its next requests.
    for _ in range(2):
        assert run_wsgi(adapter).body == b"hello"
    assert closed == ["finally"]


@pytest.mark.parametrize("wait", ["none", "timer", "ready callback"])
def test_a_request_is_served_whatever_the_app_waits_for(
    inline_adapter: list[ASGIToWSGI], wait: str
) -> None:
    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http":
            if wait == "timer":
                await asyncio.sleep(0.001)
            elif wait == "ready callback":
                await asyncio.sleep(0)
        await hello(scope, receive, send)

    adapter = serve(inline_adapter, app)
    for _ in range(3):
        result = run_wsgi(adapter)
        assert result.status == "200 OK"
        assert result.body == b"hello"


def test_the_loop_of_an_applications_policy_is_used(
    monkeypatch: pytest.MonkeyPatch, inline_adapter: list[ASGIToWSGI]
) -> None:
    class Own(asyncio.SelectorEventLoop):
        pass

    class Policy(asyncio.DefaultEventLoopPolicy):
        _loop_factory = Own

    monkeypatch.setattr(asyncio.events, "_event_loop_policy", Policy())
    kinds: list[type[Any]] = []

    async def app(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        kinds.append(type(asyncio.get_running_loop()))
        await hello(scope, receive, send)

    adapter = serve(inline_adapter, app)
    assert run_wsgi(adapter).body == b"hello"
    assert set(kinds) == {Own}  # uvloop's policy, say: its loop, not a plain asyncio one
