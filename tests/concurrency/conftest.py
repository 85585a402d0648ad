"""Leak checks for the concurrency tests: every thread a test starts must be gone after it.

crossgate's persistent threads are the exception, told apart by name and bounded in number:
the shared pool (``crossgate-sync-N``, at most `MAX_WORKERS`), the thread-sensitive threads
(``crossgate-sensitive-N``: the process-wide one plus at most `MAX_CONTEXT_THREADS` for
`ThreadSensitiveContext` blocks) and the persistent loop (``crossgate-loop``). asgiref's own
process-wide thread-sensitive thread is allowed too, by identity.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from crossgate.concurrency._asgiref import MAX_CONTEXT_THREADS
from crossgate.concurrency._pool import MAX_WORKERS

T = TypeVar("T")

PERSISTENT = {
    "crossgate-sync-": MAX_WORKERS,
    "crossgate-sensitive-": 1 + MAX_CONTEXT_THREADS,
    "crossgate-loop": 1,
}


def persistent_kind(thread: threading.Thread) -> str | None:
    for prefix in PERSISTENT:
        if thread.name.startswith(prefix):
            return prefix
    return None


def _asgiref_threads() -> set[threading.Thread]:
    sync = sys.modules.get("asgiref.sync")
    if sync is None:
        return set()
    return set(getattr(sync.SyncToAsync.single_thread_executor, "_threads", ()))


def _leaked(baseline: set[threading.Thread]) -> list[threading.Thread]:
    allowed = baseline | _asgiref_threads()
    return [
        t
        for t in threading.enumerate()
        if t not in allowed and t.is_alive() and persistent_kind(t) is None
    ]


def _over_bound() -> dict[str, int]:
    counts = dict.fromkeys(PERSISTENT, 0)
    for thread in threading.enumerate():
        kind = persistent_kind(thread)
        if kind is not None and thread.is_alive():
            counts[kind] += 1
    return {kind: n for kind, n in counts.items() if n > PERSISTENT[kind]}


@pytest.fixture(autouse=True)
def thread_leak_check() -> Iterator[None]:
    """Fail when a test leaves a thread behind, or grows a persistent pool past its bound."""
    baseline = set(threading.enumerate())
    yield
    # asgiref's async_to_sync never shuts down the one-thread pool it makes per call: its
    # thread ends when the pool is garbage-collected, which a traceback can delay.
    gc.collect()
    # A bounded wait for threads on their way out (a context thread stopped on release).
    deadline = time.monotonic() + 5
    while (_leaked(baseline) or _over_bound()) and time.monotonic() < deadline:
        time.sleep(0.01)
    leaked = _leaked(baseline)
    assert not leaked, f"threads leaked: {[t.name for t in leaked]}"
    over = _over_bound()
    assert not over, f"persistent threads over their bound: {over}"


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` in a fresh loop and check it left no task pending behind it."""

    async def wrapper() -> T:
        result = await main()
        for _ in range(5):
            await asyncio.sleep(0)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not pending, f"tasks left pending: {pending}"
        return result

    return asyncio.run(wrapper())


# The bound of every wait for another thread in these tests (never a measured time).
WAIT = 10.0
