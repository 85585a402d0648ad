"""The machinery's edges: no asgiref, pools across a fork, late outcomes, loop shutdown."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from crossgate.concurrency import (
    Call,
    ThreadSensitiveContext,
    _runtime,
    async_to_sync,
    async_to_sync_iter,
    orphaned_calls,
    sync_to_async,
    sync_to_async_iter,
)
from crossgate.concurrency import _asgiref as bridge
from crossgate.concurrency import _loops as loops
from crossgate.concurrency._pool import DeadlockError, Pool, Waiter, inbox_for
from crossgate.concurrency._runtime import LoopThread
from crossgate.concurrency._sync_iter import SyncToAsyncIterator, _Pull
from tests.concurrency.conftest import WAIT, run

ROOT = Path(__file__).resolve().parents[2]


def ident() -> threading.Thread:
    return threading.current_thread()


# -- without asgiref ------------------------------------------------------------------------------


def test_crossgate_never_imports_asgiref() -> None:
    code = """
import asyncio, sys, threading
from crossgate.concurrency import async_to_sync, sync_to_async

def ident():
    return threading.current_thread()

async def inner():
    return await sync_to_async(ident, thread_sensitive=True)()

assert async_to_sync(inner)() is threading.current_thread()
print(sorted(m for m in sys.modules if m.startswith(("asgiref", "django"))))
"""
    proc = subprocess.run(  # bounded: the timeout kills a hung child
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]"]


@pytest.fixture
def without_asgiref(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the application had never imported asgiref (crossgate then ignores it)."""
    monkeypatch.delitem(sys.modules, "asgiref.sync", raising=False)


@pytest.mark.usefixtures("without_asgiref")
def test_without_asgiref_the_waiting_thread_runs_sensitive_calls() -> None:
    assert bridge.caller_loop() is None
    assert bridge.enter_waiter(Waiter()) == frozenset()

    async def inner() -> list[threading.Thread]:
        return [await sync_to_async(ident, thread_sensitive=True)() for _ in range(2)]

    assert async_to_sync(inner)() == [threading.current_thread()] * 2

    async def main() -> None:
        thread = await sync_to_async(ident, thread_sensitive=True)()
        assert thread.name.startswith("crossgate-sensitive-")

    run(main)


@pytest.mark.usefixtures("without_asgiref")
def test_without_asgiref_a_task_outliving_its_waiter_falls_back() -> None:
    tasks: list[asyncio.Task[threading.Thread]] = []
    release: list[asyncio.Event] = []

    async def spawns() -> None:
        release.append(asyncio.Event())

        async def late() -> threading.Thread:
            await release[0].wait()
            return await sync_to_async(ident, thread_sensitive=True)()

        tasks.append(asyncio.ensure_future(late()))

    async_to_sync(spawns)()

    async def finish() -> threading.Thread:
        release[0].set()
        return await tasks[0]

    assert async_to_sync(finish)().name.startswith("crossgate-sensitive-")


@pytest.mark.usefixtures("without_asgiref")
def test_without_asgiref_a_nested_loop_on_the_waiting_thread_is_a_deadlock() -> None:
    def nested() -> None:
        asyncio.run(sync_to_async(ident, thread_sensitive=True)())

    async def inner() -> None:
        await sync_to_async(nested, thread_sensitive=True)()

    with pytest.raises(DeadlockError, match="MainThread"):
        async_to_sync(inner)()


# -- asgiref's jobs on crossgate threads ----------------------------------------------------------


def test_asgiref_jobs_on_a_waiter_report_results_errors_and_cancels() -> None:
    executor = waiter = Waiter()
    ok = executor.submit(lambda: 42)
    failing = executor.submit(int, "not a number")
    ran: list[str] = []
    cancelled = executor.submit(ran.append, "ran")
    assert cancelled.cancel()
    waiter.close()  # runs what was queued, on this (the waiting) thread
    assert ok.result(0) == 42
    with pytest.raises(ValueError, match="invalid literal"):
        failing.result(0)
    assert ran == []
    # Once the waiter is gone, asgiref's work goes to the fallback thread.
    assert executor.submit(ident).result(WAIT).name.startswith("crossgate-sensitive-")


def test_an_asgiref_job_dropped_by_an_executor_cancels_its_future() -> None:
    from crossgate.concurrency._pool import FnJob

    future: Future[None] = Future()
    job = FnJob(future, print, (), {})
    done: Future[None] = Future()
    done.set_result(None)
    job.dropped_by(done)  # ran normally: nothing to do
    assert not future.cancelled()
    dropped: Future[None] = Future()
    dropped.cancel()
    job.dropped_by(dropped)
    assert future.cancelled()


# -- pools ----------------------------------------------------------------------------------------


class Job:
    def __init__(self, func: Any) -> None:
        self.func = func

    def run(self) -> None:
        self.func()

    def dropped_by(self, future: Future[Any]) -> None:
        raise AssertionError("not used with pools")


def test_a_pool_starts_afresh_after_a_fork() -> None:
    test_pool = Pool("crossgate-test-", 1)
    first: list[threading.Thread] = []
    second: list[threading.Thread] = []
    done = threading.Event()
    test_pool.put(Job(lambda: first.append(threading.current_thread())))
    old_queue = test_pool._queue
    test_pool._reset()  # what the after-fork hook does in a child

    def record() -> None:
        second.append(threading.current_thread())
        done.set()

    test_pool.put(Job(record))
    assert done.wait(WAIT)
    assert first[0] is not second[0]  # the "parent's" thread is not used in the "child"
    old_queue.put(None)  # both threads live in this one process: stop the old one too
    first[0].join(WAIT)
    test_pool.shutdown(timeout=WAIT)


def test_shutdown_without_a_timeout_returns_at_once_and_the_threads_stop() -> None:
    test_pool = Pool("crossgate-test-", 1)
    release = threading.Event()
    ran: list[threading.Thread] = []

    def job() -> None:
        release.wait(WAIT)
        ran.append(threading.current_thread())

    test_pool.put(Job(job))
    test_pool.shutdown(wait=False)  # the queued job is still running: returns without waiting
    release.set()
    for thread in list(test_pool._threads):
        thread.join(WAIT)
    assert ran
    assert not any(t.is_alive() for t in test_pool._threads)


def test_shutdown_from_a_pool_thread_does_not_join_itself() -> None:
    test_pool = Pool("crossgate-test-", 2)
    done = threading.Event()

    def stop_from_inside() -> None:
        test_pool.shutdown(timeout=WAIT)
        done.set()

    test_pool.put(Job(stop_from_inside))
    assert done.wait(WAIT)
    for thread in list(test_pool._threads):
        thread.join(WAIT)


def test_late_outcomes_for_cancelled_futures_and_closed_loops_are_dropped() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        cancelled: asyncio.Future[Any] = loop.create_future()
        cancelled.cancel()
        live: asyncio.Future[Any] = loop.create_future()
        inbox = inbox_for(loop)
        inbox.post(cancelled, True, "too late")
        inbox.post(live, False, ValueError("delivered"))
        with pytest.raises(ValueError, match="delivered"):
            await live

    run(main)
    closed = asyncio.new_event_loop()
    closed.close()
    inbox = inbox_for(closed)
    inbox.post(closed.create_future(), True, None)
    assert inbox.items == []
    assert not inbox.scheduled


def test_a_finished_or_dropped_call_ignores_late_cancels() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        call = Call(loop, int, ("7",), {}, contextvars.copy_context())
        call.run()
        assert await call.future == 7
        before = orphaned_calls()
        call.abandon()  # finished already: not an orphan
        assert orphaned_calls() == before
        queued = Call(loop, int, ("8",), {}, contextvars.copy_context())
        queued.abandon()  # never started: dropped, so a later executor cancel says nothing
        cancelled: Future[None] = Future()
        cancelled.cancel()
        queued.dropped_by(cancelled)
        queued.run()  # and if it is handed to a thread anyway, it does not run
        assert not queued.future.done()

    run(main)


def test_a_context_that_made_no_calls_leases_no_thread() -> None:
    async def main() -> None:
        async with ThreadSensitiveContext() as context:
            pass
        assert context._pool is None

    run(main)


# -- the persistent loop --------------------------------------------------------------------------


def test_stopping_the_loop_thread_cancels_what_is_left_on_it() -> None:
    portal = LoopThread("crossgate-loop")
    started = threading.Event()
    cancelled = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    asyncio.run_coroutine_threadsafe(forever(), portal.loop)
    assert started.wait(WAIT)
    portal.stop()
    assert cancelled.is_set()
    assert portal.loop.is_closed()
    portal.stop()  # again: nothing left to stop


def test_a_task_that_ignores_the_stop_is_reported_and_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    thread = LoopThread("crossgate-stubborn")
    release = threading.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                continue

    future = asyncio.run_coroutine_threadsafe(stubborn(), thread.loop)
    thread.stop(0.05)
    assert "still running on crossgate-stubborn" in caplog.text
    [task] = [t for t in _runtime.STUCK_TASKS if not t.done()]
    assert thread.loop.is_closed()
    release.set()
    assert not future.done()  # kept referenced, so never destroyed: its loop is closed
    assert not task.done()


def test_stopping_never_waits_for_the_default_executor() -> None:
    # loop.shutdown_default_executor() would join this thread, without a bound on 3.11.
    thread = LoopThread("crossgate-blocked")
    release = threading.Event()
    started: list[threading.Thread] = []

    def blocked() -> None:
        started.append(threading.current_thread())
        release.wait(WAIT)

    async def offload() -> None:
        await asyncio.to_thread(blocked)

    asyncio.run_coroutine_threadsafe(offload(), thread.loop)
    deadline = time.monotonic() + WAIT
    while not started and time.monotonic() < deadline:
        time.sleep(0.01)
    thread.stop(0.05)
    assert not thread.thread.is_alive()
    release.set()
    started[0].join(WAIT)


def test_a_pool_serves_as_an_executor() -> None:
    executor = Pool("crossgate-test-executor-", 1)
    assert executor.submit(lambda: threading.current_thread().name).result(WAIT) == (
        "crossgate-test-executor-1"
    )
    owner = executor.owner()
    assert owner is not None
    assert owner.name == "crossgate-test-executor-1"
    executor.shutdown()
    owner.join(WAIT)
    with pytest.raises(RuntimeError, match="shut down"):
        executor.submit(int)


def test_stop_portal_stops_the_loop_and_a_new_one_starts_on_demand() -> None:
    async def where() -> threading.Thread:
        return threading.current_thread()

    first = async_to_sync(where)()
    loops.stop_portal()
    assert not first.is_alive()
    loops.stop_portal()  # none running: nothing to do
    second = async_to_sync(where)()
    assert second is not first
    assert second.name == "crossgate-loop"


# -- iterator edges -------------------------------------------------------------------------------


def test_a_generator_calling_async_to_sync_uses_the_consumers_loop() -> None:
    async def loop_of() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def generator() -> Iterator[asyncio.AbstractEventLoop]:
        yield async_to_sync(loop_of)()

    async def main() -> None:
        [loop] = [item async for item in sync_to_async_iter(generator())]
        assert loop is asyncio.get_running_loop()

    run(main)


def test_the_reader_keeps_going_when_the_consumer_caught_up_meanwhile() -> None:
    # The decision a reading job makes after a full batch: the consumer may have drained the
    # buffer while the job was stopping; then it reads on instead of leaving.
    stream: SyncToAsyncIterator[int] = SyncToAsyncIterator(iter([1, 2]), read_ahead=2)
    stream._pulling = True
    outcomes = iter([(False, None), (True, None)])
    stream._pull_batch = lambda: next(outcomes)  # type: ignore[method-assign]
    loop = asyncio.new_event_loop()
    try:
        _Pull(stream, loop, contextvars.copy_context()).run()
    finally:
        loop.close()
    assert stream._done
    assert not stream._pulling


def test_a_slow_async_source_outlasts_the_consumers_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The consumer's periodic check finds the loop alive and keeps waiting.
    monkeypatch.setattr(loops, "POLL", 0.001)

    async def slow() -> AsyncIterator[int]:
        for i in range(3):
            await asyncio.sleep(0.01)
            yield i

    assert list(async_to_sync_iter(slow())) == [0, 1, 2]


def test_an_async_iterable_without_aclose() -> None:
    class Plain:
        def __init__(self) -> None:
            self.left = 3

        def __aiter__(self) -> Plain:
            return self

        async def __anext__(self) -> int:
            if not self.left:
                raise StopAsyncIteration
            self.left -= 1
            return self.left

    assert list(async_to_sync_iter(Plain())) == [2, 1, 0]
    async_to_sync_iter(Plain()).close()  # never started, nothing to close


def test_an_async_generator_ignored_by_close_before_start() -> None:
    async def numbers() -> AsyncIterator[int]:
        yield 1

    stream = async_to_sync_iter(numbers())
    stream.close()
    with pytest.raises(StopIteration):
        next(stream)


def test_a_call_nested_in_another_job_does_not_free_that_jobs_thread() -> None:
    # A generator read on a pool thread may call async_to_sync, whose waiting thread (this
    # same pool thread) then runs a thread-sensitive call: that call must not count the
    # thread as idle, or the pool would queue work behind a busy thread instead of starting one.
    test_pool = Pool("crossgate-test-", 2)
    idle_inside: list[int] = []
    done = threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        nested = Call(loop, int, ("5",), {}, contextvars.copy_context())

        def outer_job() -> None:
            nested.run()  # as a waiter would run it, on this thread
            with test_pool._lock:
                idle_inside.append(test_pool._idle)
            done.set()

        test_pool.put(Job(outer_job))
        assert await nested.future == 5
        await loop.run_in_executor(None, done.wait, WAIT)

    run(main)
    assert idle_inside == [0]
    test_pool.shutdown(timeout=WAIT)
