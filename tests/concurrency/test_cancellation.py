"""Cancellation: the caller always gets `CancelledError`; the orphaned sync call is counted."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from crossgate.concurrency import check_cancelled, orphaned_calls, sync_to_async
from tests.concurrency.conftest import WAIT, run


async def in_thread(event: threading.Event) -> None:
    """Wait for ``event`` without blocking the loop (on the loop's default executor)."""
    assert await asyncio.get_running_loop().run_in_executor(None, event.wait, WAIT)


def test_cancelled_caller_gets_cancelled_error_and_the_call_finishes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    def slow() -> str:
        started.set()
        release.wait(WAIT)
        finished.set()
        return "result nobody gets"

    async def main() -> None:
        task = asyncio.ensure_future(sync_to_async(slow)())
        await in_thread(started)
        before = orphaned_calls()
        task.cancel()
        # The cancellation reaches the task while the sync function still runs: it is not
        # held back until the function returns, and not traded for its result.
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not finished.is_set()
        after = orphaned_calls()
        assert after.running == before.running + 1
        assert after.total == before.total + 1
        release.set()
        await in_thread(finished)

    with caplog.at_level(logging.INFO, logger="crossgate.concurrency"):
        run(main)
    messages = [record.getMessage() for record in caplog.records]
    assert any("was cancelled while it ran" in m and "slow" in m for m in messages)
    assert any("orphaned call" in m and "finished" in m for m in messages)


def test_orphan_count_goes_down_when_the_call_ends() -> None:
    started = threading.Event()
    release = threading.Event()
    done = threading.Event()

    def slow() -> None:
        started.set()
        release.wait(WAIT)

    async def main() -> None:
        task = asyncio.ensure_future(sync_to_async(slow)())
        await in_thread(started)
        running = orphaned_calls().running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert orphaned_calls().running == running + 1
        release.set()
        # The count drops once the worker is done; a follow-up call on the one free thread
        # cannot start before that (the pool's threads are all idle or this one).
        while orphaned_calls().running != running:
            await asyncio.sleep(0.01)
        done.set()

    run(main)
    assert done.is_set()


def test_check_cancelled_raises_inside_an_orphaned_call(caplog: pytest.LogCaptureFixture) -> None:
    started = threading.Event()
    cancelled = threading.Event()
    outcome: list[str] = []

    def cooperative() -> None:
        check_cancelled()  # not cancelled yet: a no-op
        started.set()
        cancelled.wait(WAIT)
        try:
            check_cancelled()
        except Exception:  # sync code's broad handlers must not swallow the stop
            outcome.append("swallowed by except Exception")
        except BaseException:
            outcome.append("stopped early")
            raise
        else:
            outcome.append("ran on")

    async def main() -> None:
        task = asyncio.ensure_future(sync_to_async(cooperative)())
        await in_thread(started)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cancelled.set()
        while orphaned_calls().running:
            await asyncio.sleep(0.01)

    with caplog.at_level(logging.INFO, logger="crossgate.concurrency"):
        run(main)
    assert outcome == ["stopped early"]
    assert any("stopped early at check_cancelled()" in r.getMessage() for r in caplog.records)


def test_check_cancelled_is_a_no_op_outside_crossgate_threads() -> None:
    check_cancelled()  # the main thread

    async def main() -> None:
        check_cancelled()  # the loop's thread
        await asyncio.get_running_loop().run_in_executor(None, check_cancelled)

    run(main)


def test_a_call_cancelled_before_it_starts_never_runs() -> None:
    blocker_started = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    def blocker() -> None:
        blocker_started.set()
        release.wait(WAIT)

    def queued() -> None:
        ran.append("queued ran")

    async def main() -> None:
        # The thread-sensitive thread runs one call at a time: the second one queues.
        first = asyncio.ensure_future(sync_to_async(blocker, thread_sensitive=True)())
        await in_thread(blocker_started)
        before = orphaned_calls().total
        second = asyncio.ensure_future(sync_to_async(queued, thread_sensitive=True)())
        await asyncio.sleep(0)
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        release.set()
        await first
        # Anything queued behind it has run by the time a third call returns.
        await sync_to_async(lambda: None, thread_sensitive=True)()
        assert orphaned_calls().total == before  # never started: not an orphan

    run(main)
    assert ran == []


def test_orphaned_call_that_fails_is_logged_with_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = threading.Event()
    release = threading.Event()

    def fails_later() -> None:
        started.set()
        release.wait(WAIT)
        raise ValueError("nobody hears this")

    async def main() -> None:
        task = asyncio.ensure_future(sync_to_async(fails_later)())
        await in_thread(started)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        while orphaned_calls().running:
            await asyncio.sleep(0.01)

    with caplog.at_level(logging.INFO, logger="crossgate.concurrency"):
        run(main)
    failed = [r for r in caplog.records if "failed; nobody awaited it" in r.getMessage()]
    assert failed
    assert failed[0].exc_info is not None
    assert isinstance(failed[0].exc_info[1], ValueError)


def test_many_cancelled_callers_all_see_cancelled_error() -> None:
    gate = threading.Event()
    all_started = threading.Barrier(4, timeout=WAIT)

    def work() -> int:
        all_started.wait()
        gate.wait(WAIT)
        return 1

    async def main() -> None:
        parallel = sync_to_async(work, thread_sensitive=False)
        tasks = [asyncio.ensure_future(parallel()) for _ in range(3)]
        await asyncio.get_running_loop().run_in_executor(None, all_started.wait)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        gate.set()
        while orphaned_calls().running:
            await asyncio.sleep(0.01)

    run(main)
