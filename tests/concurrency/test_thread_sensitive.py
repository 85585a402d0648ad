"""Thread-sensitive calls: which thread runs them, with crossgate alone and next to asgiref."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.validate import validator

import pytest
from asgiref.sync import ThreadSensitiveContext as AsgirefContext
from asgiref.sync import async_to_sync as asgiref_async_to_sync
from asgiref.sync import sync_to_async as asgiref_sync_to_async

import crossgate.concurrency._asgiref as sensitive_module
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.concurrency import (
    ThreadSensitiveContext,
    async_to_sync,
    sync_to_async,
)
from crossgate.concurrency._pool import ConcurrencyError, DeadlockError
from crossgate.testing import call_http
from crossgate.types import StartResponse, WSGIEnvironment
from tests.concurrency.conftest import WAIT, run


def ident() -> threading.Thread:
    return threading.current_thread()


sensitive = sync_to_async(ident, thread_sensitive=True)
asgiref_sensitive = asgiref_sync_to_async(ident, thread_sensitive=True)


# -- crossgate alone ------------------------------------------------------------------------------


def test_outside_any_context_one_process_wide_thread() -> None:
    async def main() -> set[threading.Thread]:
        return set(await asyncio.gather(*(sensitive() for _ in range(10))))

    threads = run(main)
    assert len(threads) == 1
    assert next(iter(threads)).name.startswith("crossgate-sensitive-")
    assert run(main) == threads  # and the same thread from another loop


def test_each_context_has_its_own_thread_and_runs_in_parallel() -> None:
    # Both contexts block until the other one runs too: that needs two threads.
    barrier = threading.Barrier(2, timeout=WAIT)

    def meet() -> threading.Thread:
        barrier.wait()
        return threading.current_thread()

    async def request() -> set[threading.Thread]:
        async with ThreadSensitiveContext():
            first = await sensitive()
            met = await sync_to_async(meet, thread_sensitive=True)()
            async with ThreadSensitiveContext():  # nested: the outer one counts
                last = await sensitive()
        return {first, met, last}

    async def main() -> list[set[threading.Thread]]:
        return list(await asyncio.gather(request(), request()))

    one, two = run(main)
    assert len(one) == 1
    assert len(two) == 1
    assert one != two


def test_context_threads_are_reused_not_created_per_context() -> None:
    async def main() -> set[threading.Thread]:
        seen = set()
        for _ in range(12):
            async with ThreadSensitiveContext():
                seen.add(await sensitive())
        return seen

    assert len(run(main)) == 1


def test_a_task_outliving_its_context_gets_an_error() -> None:
    async def main() -> None:
        async with ThreadSensitiveContext():
            await sensitive()
            release = asyncio.Event()

            async def late() -> threading.Thread:
                await release.wait()
                return await sensitive()

            task = asyncio.ensure_future(late())
        release.set()
        with pytest.raises(ConcurrencyError, match="after its ThreadSensitiveContext exited"):
            await task

    run(main)


def test_concurrent_contexts_reuse_their_threads_round_after_round() -> None:
    # 8 contexts at a time (a barrier proves they overlap), 5 rounds: 8 threads in all, not 40.
    count = 8
    barrier = threading.Barrier(count, timeout=WAIT)
    seen: set[threading.Thread] = set()

    def meet() -> threading.Thread:
        barrier.wait()
        return threading.current_thread()

    async def request() -> None:
        async with ThreadSensitiveContext():
            seen.add(await sync_to_async(meet, thread_sensitive=True)())

    async def main() -> None:
        for _ in range(5):
            await asyncio.gather(*(request() for _ in range(count)))

    run(main)
    assert len(seen) == count


def test_past_the_bound_contexts_share_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # With room for 2 threads, 5 overlapping contexts share them; each context's calls still
    # all run on one thread.
    monkeypatch.setattr(sensitive_module, "MAX_CONTEXT_THREADS", 2)
    count = 5
    first_calls_made = 0
    all_in = asyncio.Event()

    async def request() -> tuple[threading.Thread, threading.Thread]:
        nonlocal first_calls_made
        async with ThreadSensitiveContext():
            first = await sensitive()
            first_calls_made += 1
            if first_calls_made == count:
                all_in.set()
            await all_in.wait()  # every context holds its thread now
            return first, await sensitive()

    async def main() -> list[tuple[threading.Thread, threading.Thread]]:
        return await asyncio.gather(*(request() for _ in range(count)))

    pairs = run(main)
    assert all(first is second for first, second in pairs)
    assert len({first for first, _ in pairs}) <= 2


def test_under_an_outer_async_to_sync_the_calling_thread_runs_it() -> None:
    async def inner() -> list[threading.Thread]:
        return [await sensitive(), await sensitive()]

    def caller() -> None:
        assert async_to_sync(inner)() == [threading.current_thread()] * 2

    worker = threading.Thread(target=caller, name="plain-caller")
    worker.start()
    worker.join(WAIT)
    caller()  # and from the main thread


def test_in_a_wsgi_worker_the_worker_thread_runs_it() -> None:
    seen: list[tuple[threading.Thread, threading.Thread]] = []

    async def inner() -> threading.Thread:
        return await sensitive()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.append((threading.current_thread(), async_to_sync(inner)()))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    adapter = WSGIToASGI(validator(app))
    try:
        run(lambda: call_http(adapter))
    finally:
        adapter.close()
    [(worker, ran_on)] = seen
    assert ran_on is worker
    assert worker.name.startswith("crossgate-wsgi")


def test_a_task_outliving_async_to_sync_falls_back_to_the_default_thread() -> None:
    started: list[asyncio.Task[threading.Thread]] = []
    release = asyncio.Event()

    async def spawns() -> None:
        nonlocal release
        release = asyncio.Event()

        async def late() -> threading.Thread:
            await release.wait()
            return await sensitive()

        started.append(asyncio.ensure_future(late()))

    async_to_sync(spawns)()  # returns while the task it started still waits

    async def finish() -> threading.Thread:
        release.set()
        return await started[0]

    thread = async_to_sync(finish)()
    assert thread is not threading.current_thread()
    assert thread.name.startswith("crossgate-sensitive-")


# -- deadlocks ------------------------------------------------------------------------------------


def _nested_loop() -> threading.Thread:
    # Thread-sensitive code that starts an event loop on its own thread, whose coroutine
    # needs that very thread: it could never run.
    return asyncio.run(sensitive())


def test_deadlock_on_the_process_wide_thread_names_it() -> None:
    async def main() -> None:
        with pytest.raises(DeadlockError, match=r"on thread 'crossgate-sensitive-\d+'") as info:
            await sync_to_async(_nested_loop, thread_sensitive=True)()
        assert info.value.thread_name.startswith("crossgate-sensitive-")

    run(main)


def test_deadlock_on_a_context_thread_names_it() -> None:
    async def main() -> None:
        async with ThreadSensitiveContext():
            with pytest.raises(DeadlockError, match="which is the thread awaiting it"):
                await sync_to_async(_nested_loop, thread_sensitive=True)()

    run(main)


def test_deadlock_on_the_thread_waiting_in_async_to_sync_names_it() -> None:
    async def inner() -> None:
        await sync_to_async(_nested_loop, thread_sensitive=True)()

    def caller() -> None:
        with pytest.raises(DeadlockError, match="'waiting-caller'"):
            async_to_sync(inner)()

    worker = threading.Thread(target=caller, name="waiting-caller")
    worker.start()
    worker.join(WAIT)


# -- next to asgiref (what Django uses) -----------------------------------------------------------


@pytest.mark.parametrize("first", ["crossgate", "asgiref"])
def test_inside_asgirefs_context_the_same_thread_as_asgiref(first: str) -> None:
    async def request() -> tuple[threading.Thread, threading.Thread]:
        async with AsgirefContext():
            if first == "crossgate":
                ours = await sensitive()
                theirs = await asgiref_sensitive()
            else:
                theirs = await asgiref_sensitive()
                ours = await sensitive()
        return ours, theirs

    async def main() -> list[tuple[threading.Thread, threading.Thread]]:
        return list(await asyncio.gather(request(), request()))

    (ours1, theirs1), (ours2, theirs2) = run(main)
    assert ours1 is theirs1
    assert ours2 is theirs2
    assert ours1 is not ours2  # one thread per request, as asgiref has it


def test_under_asgirefs_async_to_sync_the_calling_thread() -> None:
    async def inner() -> threading.Thread:
        return await sensitive()

    def caller() -> None:
        assert asgiref_async_to_sync(inner)() is threading.current_thread()

    worker = threading.Thread(target=caller, name="asgiref-caller")
    worker.start()
    worker.join(WAIT)


def test_asgirefs_calls_inside_our_async_to_sync_come_back_to_the_caller() -> None:
    async def inner() -> list[threading.Thread]:
        # Django's ORM awaits asgiref's thread-sensitive calls (and ASGIHandler enters
        # asgiref's context, which must not take them elsewhere).
        async with AsgirefContext():
            return [await asgiref_sensitive(), await sensitive()]

    def caller() -> None:
        assert async_to_sync(inner)() == [threading.current_thread()] * 2

    worker = threading.Thread(target=caller, name="crossgate-caller")
    worker.start()
    worker.join(WAIT)


def test_our_async_to_sync_nested_inside_asgirefs_keeps_the_innermost_thread() -> None:
    # asgiref async_to_sync (thread A) -> coroutine -> crossgate sync_to_async (pool thread W)
    # -> crossgate async_to_sync -> thread-sensitive calls: W waits innermost, so W runs both
    # crossgate's and asgiref's calls; a task left behind falls back without error.
    seen: dict[str, object] = {}
    leftovers: list[asyncio.Task[threading.Thread]] = []
    release = threading.Event()

    async def innermost() -> None:
        seen["ours"] = await sensitive()
        seen["theirs"] = await asgiref_sensitive()

        async def late() -> threading.Thread:
            await asyncio.get_running_loop().run_in_executor(None, release.wait, WAIT)
            return await asgiref_sensitive()

        leftovers.append(asyncio.ensure_future(late()))

    def middle() -> None:
        seen["middle"] = threading.current_thread()
        async_to_sync(innermost)()

    async def outer() -> threading.Thread:
        await sync_to_async(middle)()
        release.set()
        return await leftovers[0]

    def caller() -> None:
        seen["late"] = asgiref_async_to_sync(outer)()

    worker = threading.Thread(target=caller, name="asgiref-outer")
    worker.start()
    worker.join(WAIT)
    assert seen["ours"] is seen["middle"]
    assert seen["theirs"] is seen["middle"]
    late = seen["late"]
    assert isinstance(late, threading.Thread)
    assert late.name.startswith("crossgate-sensitive-")


def test_django_shaped_nesting_keeps_one_thread() -> None:
    # Django with a sync middleware: the request's context thread T runs the middleware,
    # which calls the async view chain through asgiref's async_to_sync; a sync view runs on
    # T again and calls crossgate's async_to_sync, whose coroutine interleaves crossgate's
    # and asgiref's thread-sensitive calls. Every one of them must come back to T (asgiref
    # re-homes its storage on each call, which must not revive the middleware's executor,
    # whose thread T is busy waiting for us), and T's own asgiref state must survive.
    from asgiref.sync import AsyncToSync

    seen: dict[str, Any] = {}

    async def inner() -> list[threading.Thread]:
        return [await sensitive(), await asgiref_sensitive(), await sensitive()]

    def sync_view() -> None:
        before = AsyncToSync.executors.current
        seen["inner"] = async_to_sync(inner)()
        seen["same executor"] = AsyncToSync.executors.current is before
        seen["view"] = threading.current_thread()

    async def handler() -> None:
        await asgiref_sync_to_async(sync_view, thread_sensitive=True)()

    def middleware() -> None:
        seen["middleware"] = threading.current_thread()
        asgiref_async_to_sync(handler)()

    async def request() -> None:
        async with AsgirefContext():
            await asgiref_sync_to_async(middleware, thread_sensitive=True)()

    run(request)
    assert seen["view"] is seen["middleware"]
    assert seen["inner"] == [seen["middleware"]] * 3
    assert seen["same executor"]


def test_in_an_asgiref_sync_thread_async_to_sync_uses_the_callers_loop() -> None:
    async def loop_of() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def sync_view() -> asyncio.AbstractEventLoop:
        return async_to_sync(loop_of)()

    async def main() -> None:
        async with AsgirefContext():
            assert await asgiref_sync_to_async(sync_view)() is asyncio.get_running_loop()

    run(main)


def test_a_task_without_asgirefs_local_still_finds_its_waiting_thread() -> None:
    # asgiref records the waiting thread per loop too, for tasks whose context lost it.
    async def outer() -> threading.Thread:
        loop = asyncio.get_running_loop()
        task = loop.create_task(sensitive(), context=contextvars.Context())
        return await task

    def caller() -> None:
        assert asgiref_async_to_sync(outer)() is threading.current_thread()

    worker = threading.Thread(target=caller, name="asgiref-loop-caller")
    worker.start()
    worker.join(WAIT)


def test_a_broken_asgiref_executor_falls_back() -> None:
    # A task that outlives asgiref's async_to_sync inherits its dead CurrentThreadExecutor:
    # asgiref raises "CurrentThreadExecutor already quit or is broken" (asgiref #491); we
    # move on to the next thread in the order.
    leftovers: list[asyncio.Task[threading.Thread]] = []
    release = threading.Event()

    async def spawns() -> None:
        async def late() -> threading.Thread:
            await asyncio.get_running_loop().run_in_executor(None, release.wait, WAIT)
            return await sensitive()

        leftovers.append(asyncio.ensure_future(late()))

    def sync_part() -> None:
        asgiref_async_to_sync(spawns)()

    async def main() -> threading.Thread:
        await asgiref_sync_to_async(sync_part, thread_sensitive=False)()
        release.set()
        return await leftovers[0]

    assert run(main).name.startswith("crossgate-sensitive-")


def test_deadlock_on_asgirefs_waiting_thread_names_it() -> None:
    # asgiref runs the sync function on the thread waiting in its async_to_sync; a new loop
    # there cannot wait for a thread-sensitive call that must run on that same thread.
    outcome: list[BaseException] = []

    async def inner() -> None:
        await asgiref_sync_to_async(_nested_loop, thread_sensitive=True)()

    def caller() -> None:
        try:
            asgiref_async_to_sync(inner)()
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=caller, name="asgiref-deadlock")
    worker.start()
    worker.join(WAIT)
    [error] = outcome
    assert isinstance(error, DeadlockError)
    assert error.thread_name == "asgiref-deadlock"


def test_an_exited_asgiref_context_is_reported() -> None:
    with ThreadPoolExecutor(1, thread_name_prefix="given-executor") as executor:

        async def main() -> None:
            release = asyncio.Event()

            async def late() -> threading.Thread:
                await release.wait()
                return await sensitive()

            async with AsgirefContext(executor=executor):
                assert (await sensitive()).name.startswith("given-executor")
                task = asyncio.ensure_future(late())
            release.set()
            with pytest.raises(ConcurrencyError, match="ThreadSensitiveContext has exited"):
                await task

        run(main)
