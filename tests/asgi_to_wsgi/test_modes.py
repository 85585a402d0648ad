"""Where ASGIToWSGI runs the app: inline (the WSGI thread's own loop), shared, auto, and forks."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from crossgate.adapters import asgi_to_wsgi as asgi_to_wsgi_module
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI, asgi_to_wsgi
from crossgate.exceptions import CrossgateError
from crossgate.types import ASGIReceive, ASGISend, Message
from tests.asgi_to_wsgi._apps import hello, respond
from tests.asgi_to_wsgi.conftest import Mode, ignore_start, make_environ, run_wsgi

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class WhereApp:
    """Records, per request, the thread and loop it ran on; counts lifespan startups."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.startups = 0

    async def __call__(self, scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.startups += 1
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.seen.append((threading.current_thread().name, id(asyncio.get_running_loop())))
        await respond(send, REQUEST_ID.get().encode())


@pytest.fixture
def adapters(thread_leak_check: None) -> Iterator[list[ASGIToWSGI]]:
    made: list[ASGIToWSGI] = []
    yield made
    for adapter in made:
        adapter.shutdown()


def _serve_from_threads(adapter: ASGIToWSGI, count: int, **environ: Any) -> None:
    with ThreadPoolExecutor(max_workers=count) as pool:
        barrier = threading.Barrier(count)

        def serve() -> None:
            barrier.wait(5)  # every thread serves at least one request
            run_wsgi(adapter, make_environ(extra=environ))

        for future in [pool.submit(serve) for _ in range(count)]:
            future.result()


def test_inline_runs_the_app_on_the_calling_thread_without_new_threads(
    adapters: list[ASGIToWSGI],
) -> None:
    app = WhereApp()
    adapters.append(adapter := ASGIToWSGI(app, mode="inline"))
    before = threading.active_count()

    for _ in range(3):
        run_wsgi(adapter)

    # No hand-off: the very thread that called the WSGI app ran the ASGI app, on a loop it
    # keeps for the next requests, and no thread was started for it.
    assert threading.active_count() == before
    assert {name for name, _ in app.seen} == {threading.current_thread().name}
    assert len({loop for _, loop in app.seen}) == 1


def test_inline_gives_each_thread_its_own_loop(adapters: list[ASGIToWSGI]) -> None:
    app = WhereApp()
    adapters.append(adapter := ASGIToWSGI(app, mode="inline"))

    _serve_from_threads(adapter, 4)

    assert len({name for name, _ in app.seen}) == 4
    assert len({loop for _, loop in app.seen}) == 4


def test_shared_runs_every_request_on_one_loop_thread(adapters: list[ASGIToWSGI]) -> None:
    app = WhereApp()
    adapters.append(adapter := ASGIToWSGI(app, mode="shared"))

    _serve_from_threads(adapter, 4)

    assert {name for name, _ in app.seen} == {"crossgate-asgi-loop"}
    assert len({loop for _, loop in app.seen}) == 1


@pytest.mark.parametrize(
    ("multithread", "thread"),
    [(False, "MainThread"), (True, "crossgate-asgi-loop")],
)
def test_auto_picks_from_wsgi_multithread_once_per_process(
    adapters: list[ASGIToWSGI], multithread: bool, thread: str
) -> None:
    app = WhereApp()
    adapters.append(adapter := ASGIToWSGI(app))

    run_wsgi(adapter, make_environ(extra={"wsgi.multithread": multithread}))
    # Stable for the process, whatever later requests say.
    run_wsgi(adapter, make_environ(extra={"wsgi.multithread": not multithread}), validate=False)

    assert [name for name, _ in app.seen] == [thread, thread]


def test_auto_after_an_eager_startup_warns_once_on_a_threaded_server(
    adapters: list[ASGIToWSGI], caplog: pytest.LogCaptureFixture
) -> None:
    adapters.append(adapter := ASGIToWSGI(WhereApp()))
    adapter.startup()

    for _ in range(2):
        run_wsgi(adapter, make_environ(extra={"wsgi.multithread": True}))

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "mode='shared'" in warnings[0].getMessage()


@pytest.mark.parametrize("mode", ["inline", "shared"])
def test_contextvars_of_the_wsgi_thread_reach_the_app(
    adapters: list[ASGIToWSGI], mode: Mode
) -> None:
    adapters.append(adapter := ASGIToWSGI(WhereApp(), mode=mode))

    token = REQUEST_ID.set("req-42")
    try:
        result = run_wsgi(adapter)
    finally:
        REQUEST_ID.reset(token)

    assert result.body == b"req-42"


@pytest.mark.parametrize("mode", ["inline", "shared"])
def test_a_new_process_gets_new_loops_and_its_own_startup(
    adapters: list[ASGIToWSGI], mode: Mode, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gunicorn --preload builds the app, then forks: a child must never reuse its parent's
    # loops (or loop thread, which does not exist in the child). The PID tells them apart.
    app = WhereApp()
    adapter = ASGIToWSGI(app, mode=mode)
    run_wsgi(adapter)
    parent = adapter._process
    real_pid = os.getpid()

    monkeypatch.setattr(os, "getpid", lambda: real_pid + 1)
    run_wsgi(adapter)
    child = adapter._process
    adapter.shutdown()  # the "child" shuts its own state down
    monkeypatch.undo()

    assert app.startups == 2
    assert len({loop for _, loop in app.seen}) == 2
    assert parent is not None
    assert child is not None
    assert child is not parent
    assert parent in asgi_to_wsgi_module._INHERITED
    # Clean up what a real child would never have had: the parent's own loops.
    asgi_to_wsgi_module._INHERITED.remove(parent)
    parent.stop(1.0)


def test_inline_from_a_thread_running_an_event_loop_is_refused(
    adapters: list[ASGIToWSGI],
) -> None:
    adapters.append(adapter := ASGIToWSGI(hello, mode="inline", lifespan="off"))

    async def main() -> None:
        with pytest.raises(CrossgateError, match="mode='shared'"):
            adapter(make_environ(), ignore_start)

    asyncio.run(main())


def test_asgi_to_wsgi_function_passes_the_options(adapters: list[ASGIToWSGI]) -> None:
    adapters.append(adapter := asgi_to_wsgi(hello, mode="shared", read_size=10))

    assert isinstance(adapter, ASGIToWSGI)
    assert adapter.mode == "shared"
    assert run_wsgi(adapter).body == b"hello"


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "threads"},
        {"lifespan": "yes"},
        {"read_size": 0},
        {"send_buffer": 0},
        {"max_body_size": -1},
        {"background_timeout": -1},
        {"disconnect_grace": -0.5},
        {"lifespan_timeout": -1},
    ],
)
def test_out_of_range_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message names its option
        ASGIToWSGI(hello, **options)
