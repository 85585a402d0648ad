"""`sync_to_async`: call and decorator forms, callables, contextvars, errors, pools, executors."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction as asgiref_iscoroutinefunction
from asgiref.sync import sync_to_async as asgiref_sync_to_async

from crossgate.concurrency import async_to_sync, sync_to_async
from crossgate.concurrency._pool import MAX_WORKERS, SHARED_POOL, ConcurrencyError
from tests.concurrency.conftest import WAIT, run

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
other: contextvars.ContextVar[int] = contextvars.ContextVar("other")


def add(a: int, b: int = 0) -> int:
    return a + b


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def bump(self, by: int) -> int:
        self.count += by
        return self.count


class Doubler:
    def __call__(self, x: int) -> int:
        return 2 * x


def current_thread_name() -> str:
    return threading.current_thread().name


# -- forms and callables ------------------------------------------------------------------------


def test_call_form_on_a_function() -> None:
    async def main() -> int:
        return await sync_to_async(add)(2, b=3)

    assert run(main) == 5


def test_bare_decorator() -> None:
    @sync_to_async
    def mul(a: int, b: int) -> int:
        return a * b

    async def main() -> int:
        return await mul(6, 7)

    assert run(main) == 42
    assert mul.__name__ == "mul"
    assert inspect.signature(mul) == inspect.signature(mul.__wrapped__)  # type: ignore[attr-defined]


def test_decorator_with_options() -> None:
    @sync_to_async(thread_sensitive=True)
    def where() -> str:
        return threading.current_thread().name

    async def main() -> str:
        return await where()

    assert run(main).startswith("crossgate-sensitive-")


def test_bound_method_partial_and_callable_object() -> None:
    counter = Counter()

    async def main() -> tuple[int, int, int]:
        bumped = await sync_to_async(counter.bump)(5)
        partial = await sync_to_async(functools.partial(add, 10))(b=1)
        doubled = await sync_to_async(Doubler())(21)
        return bumped, partial, doubled

    assert run(main) == (5, 11, 42)
    assert counter.count == 5


def test_decorated_method_binds_self() -> None:
    class Account:
        def __init__(self) -> None:
            self.balance = 0

        @sync_to_async
        def deposit(self, amount: int) -> int:
            self.balance += amount
            return self.balance

    account = Account()

    async def main() -> int:
        await account.deposit(3)
        return await account.deposit(4)

    assert run(main) == 7
    assert inspect.iscoroutinefunction(account.deposit)


@pytest.mark.parametrize(
    "func",
    [add, Counter().bump, functools.partial(add, 1), Doubler()],
    ids=["function", "bound-method", "partial", "callable-object"],
)
def test_results_are_coroutine_functions_for_inspect_and_asgiref(func: Any) -> None:
    wrapped = sync_to_async(func)
    assert inspect.iscoroutinefunction(wrapped)
    # Django decides "async view or not" with asgiref's check.
    assert asgiref_iscoroutinefunction(wrapped)


def test_rejects_async_callables_and_non_callables() -> None:
    async def coro() -> None:
        pass

    class AsyncCallable:
        async def __call__(self) -> None:
            pass

    for func in (coro, AsyncCallable(), functools.partial(coro)):
        with pytest.raises(TypeError, match="is async: await it directly"):
            sync_to_async(func)
    with pytest.raises(TypeError, match="needs a callable"):
        sync_to_async(42)  # type: ignore[call-overload]
    # As in asgiref: an executor only with thread_sensitive=False, given or by default.
    ours = "pass thread_sensitive=False with executor="
    theirs = "executor must not be set"
    with ThreadPoolExecutor(1) as executor:
        with pytest.raises(TypeError, match=ours):
            sync_to_async(add, executor=executor)
        with pytest.raises(TypeError, match=ours):
            sync_to_async(add, thread_sensitive=True, executor=executor)
        with pytest.raises(TypeError, match=theirs):
            asgiref_sync_to_async(add, executor=executor)
        with pytest.raises(TypeError, match=theirs):
            asgiref_sync_to_async(add, thread_sensitive=True, executor=executor)


# -- the default: thread-sensitive, as asgiref's ---------------------------------------------


def test_thread_sensitive_by_default_as_in_asgiref() -> None:
    # Same name, same default. Under async_to_sync, a call without options runs on the thread
    # waiting for the coroutine, as asgiref's does: Django's ORM shares that thread's
    # connection and its open transaction.atomic() block.
    async def main() -> tuple[threading.Thread, threading.Thread]:
        ours = await sync_to_async(threading.current_thread)()
        theirs = await asgiref_sync_to_async(threading.current_thread)()
        return ours, theirs

    ours, theirs = async_to_sync(main)()
    assert ours is threading.current_thread()
    assert theirs is threading.current_thread()
    ours = inspect.signature(sync_to_async).parameters["thread_sensitive"].default
    theirs = inspect.signature(asgiref_sync_to_async).parameters["thread_sensitive"].default
    assert ours is theirs is True


def test_thread_sensitive_false_runs_calls_in_parallel() -> None:
    async def main() -> tuple[str, str]:
        parallel = await sync_to_async(current_thread_name, thread_sensitive=False)()
        sensitive = await sync_to_async(current_thread_name)()
        return parallel, sensitive

    parallel, sensitive = run(main)
    assert parallel.startswith("crossgate-sync-")
    assert sensitive.startswith("crossgate-sensitive-")


# -- contextvars ----------------------------------------------------------------------------------


def test_contextvars_go_in_and_changes_come_back() -> None:
    def work() -> str:
        seen = var.get()
        var.set("set in the thread")
        other.set(7)
        return seen

    async def main() -> tuple[str, str, int]:
        var.set("set by the caller")
        seen = await sync_to_async(work)()
        return seen, var.get(), other.get()

    assert run(main) == ("set by the caller", "set in the thread", 7)


def test_context_changes_come_back_when_the_function_raises() -> None:
    def work() -> None:
        var.set("before the error")
        raise ValueError("boom")

    async def main() -> str:
        with pytest.raises(ValueError, match="boom"):
            await sync_to_async(work)()
        return var.get()

    assert run(main) == "before the error"


def test_each_call_gets_its_own_copy() -> None:
    # Two concurrent calls: neither sees the other's change, each caller gets its own back.
    barrier = threading.Barrier(2, timeout=WAIT)

    def work(value: str) -> str:
        var.set(value)
        barrier.wait()
        return var.get()

    async def caller(value: str) -> tuple[str, str]:
        result = await sync_to_async(work, thread_sensitive=False)(value)
        return result, var.get()

    async def main() -> list[tuple[str, str]]:
        return list(await asyncio.gather(caller("a"), caller("b")))

    assert run(main) == [("a", "a"), ("b", "b")]


# -- errors ---------------------------------------------------------------------------------------


def test_exception_keeps_its_original_traceback() -> None:
    def deep_failure() -> None:
        raise KeyError("missing")

    async def main() -> BaseException:
        try:
            await sync_to_async(deep_failure)()
        except KeyError as exc:
            return exc
        raise AssertionError("no error")

    error = run(main)
    frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    assert "deep_failure" in frames
    assert frames[-1] == "deep_failure"


def test_stop_iteration_becomes_a_runtime_error() -> None:
    # asyncio futures refuse StopIteration; a naive bridge never wakes the caller.
    def stops() -> None:
        raise StopIteration

    async def main() -> None:
        with pytest.raises(RuntimeError, match="raised StopIteration") as info:
            await sync_to_async(stops)()
        assert isinstance(info.value.__cause__, StopIteration)

    run(main)


def test_base_exceptions_reach_the_caller_and_the_worker_survives() -> None:
    def exits() -> None:
        raise SystemExit(3)

    async def main() -> str:
        with pytest.raises(SystemExit):
            await sync_to_async(exits, thread_sensitive=False)()
        return await sync_to_async(current_thread_name, thread_sensitive=False)()

    assert run(main).startswith("crossgate-sync-")


# -- pools ----------------------------------------------------------------------------------------


def test_runs_on_named_pool_threads_and_reuses_them() -> None:
    async def main() -> set[str]:
        names = set()
        for _ in range(50):
            names.add(await sync_to_async(current_thread_name, thread_sensitive=False)())
        return names

    before = set(SHARED_POOL._threads)
    names = run(main)
    assert names <= {thread.name for thread in SHARED_POOL._threads}
    assert all(name.startswith("crossgate-sync-") for name in names)
    # 50 calls in a row start at most one thread (none if one was idle already).
    assert len(set(SHARED_POOL._threads) - before) <= (0 if before else 1)


def test_concurrent_calls_run_in_parallel_up_to_the_bound() -> None:
    # Twice the bound of calls, all blocking until MAX_WORKERS of them run at once: the pool
    # must run that many in parallel, and never start more threads than its bound.
    barrier = threading.Barrier(MAX_WORKERS, timeout=WAIT)
    running: set[str] = set()

    def work() -> None:
        running.add(threading.current_thread().name)
        barrier.wait()

    async def main() -> None:
        parallel = sync_to_async(work, thread_sensitive=False)
        await asyncio.gather(*(parallel() for _ in range(2 * MAX_WORKERS)))

    run(main)
    assert len(running) == MAX_WORKERS
    assert len(SHARED_POOL._threads) <= MAX_WORKERS


def test_a_user_executor_runs_the_calls() -> None:
    with ThreadPoolExecutor(2, thread_name_prefix="user-pool") as executor:

        async def main() -> str:
            var.set("from the caller")

            def work() -> str:
                var.set("changed")
                return threading.current_thread().name

            name = await sync_to_async(work, thread_sensitive=False, executor=executor)()
            assert var.get() == "changed"
            return name

        assert run(main).startswith("user-pool")


def test_an_executor_that_drops_the_call_wakes_the_caller() -> None:
    started = threading.Event()
    release = threading.Event()
    executor = ThreadPoolExecutor(1, thread_name_prefix="dropping-pool")

    def block() -> None:
        started.set()
        release.wait(WAIT)

    async def main() -> None:
        first = asyncio.ensure_future(
            sync_to_async(block, thread_sensitive=False, executor=executor)()
        )
        await asyncio.get_running_loop().run_in_executor(None, started.wait, WAIT)
        second = asyncio.ensure_future(
            sync_to_async(add, thread_sensitive=False, executor=executor)(1)
        )
        await asyncio.sleep(0)
        # Drops the queued second call; the first one is running and finishes.
        executor.shutdown(wait=False, cancel_futures=True)
        release.set()
        with pytest.raises(ConcurrencyError, match="cancelled add before it ran"):
            await second
        await first

    run(main)
    executor.shutdown()


def test_a_shut_down_pool_refuses_work() -> None:
    from crossgate.concurrency._pool import Pool

    pool = Pool("crossgate-test-", 1)
    pool.shutdown(timeout=WAIT)

    async def main() -> None:
        from crossgate.concurrency import Call

        call = Call(asyncio.get_running_loop(), add, (1,), {}, contextvars.copy_context())
        with pytest.raises(ConcurrencyError, match="shut down"):
            pool.put(call)

    run(main)
