"""Fixtures for driving WSGIToASGI in-process, with leak checks after every test."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Protocol, TypeVar
from wsgiref.validate import validator

import pytest

from crossgate import WSGIToASGI
from crossgate.types import StartResponse, WSGIApplication, WSGIEnvironment

T = TypeVar("T")


class MakeAdapter(Protocol):
    def __call__(
        self, app: WSGIApplication, *, validate: bool = True, **options: Any
    ) -> WSGIToASGI: ...


class CountingReceive:
    """A server's ``receive``: an empty, complete body, then ``http.disconnect`` (at once when
    ``gone``, else not within 30 s); ``calls`` counts what the adapter asked for."""

    def __init__(self, *, gone: bool = False) -> None:
        self.gone = gone
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        if not self.gone:
            await asyncio.sleep(30)
        return {"type": "http.disconnect"}


async def drop(message: Any) -> None:
    """A server's ``send`` for tests that look only at what the app saw."""


class CountingApp:
    """A WSGI app answering an empty 200 that counts its calls: did the request reach it?"""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        self.calls += 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []


def _other_threads(baseline: set[int | None]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.ident not in baseline and t.is_alive()]


@pytest.fixture
def thread_leak_check() -> Iterator[None]:
    """Fail when a test leaves a thread running (bounded wait for threads that are exiting)."""
    baseline = {t.ident for t in threading.enumerate()}
    yield
    deadline = time.monotonic() + 5
    while _other_threads(baseline) and time.monotonic() < deadline:
        time.sleep(0.01)
    leaked = _other_threads(baseline)
    assert not leaked, f"threads leaked: {[t.name for t in leaked]}"


@pytest.fixture
def make_adapter(thread_leak_check: None) -> Iterator[MakeAdapter]:
    """Build adapters around ``wsgiref.validate.validator(app)``; close them after the test.

    ``validate=False`` is for apps that break PEP 3333 on purpose: the validator would catch
    the fault with an AssertionError before the adapter could show how it handles it.
    """
    made: list[WSGIToASGI] = []

    def make(app: WSGIApplication, *, validate: bool = True, **options: Any) -> WSGIToASGI:
        adapter = WSGIToASGI(validator(app) if validate else app, **options)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` in a fresh loop and check it left no task pending behind it."""

    async def wrapper() -> T:
        result = await main()
        # Tasks the adapter cancels finish on the next turns of the loop.
        for _ in range(5):
            await asyncio.sleep(0)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not pending, f"tasks left pending: {pending}"
        return result

    return asyncio.run(wrapper())
