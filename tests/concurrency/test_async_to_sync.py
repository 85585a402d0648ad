"""`async_to_sync`: forms, which loop runs the coroutine, timeouts, errors, fork and exit."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterable
from pathlib import Path
from wsgiref.validate import validator

import pytest

from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.concurrency import _loops as loops
from crossgate.concurrency import async_to_sync, set_server_loop, sync_to_async
from crossgate.concurrency._pool import ConcurrencyError
from crossgate.testing import call_http
from crossgate.types import StartResponse, WSGIEnvironment
from tests.concurrency.conftest import WAIT, run

ROOT = Path(__file__).resolve().parents[2]

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def where() -> tuple[asyncio.AbstractEventLoop, str]:
    """The loop and the thread this coroutine runs on."""
    await asyncio.sleep(0)
    return asyncio.get_running_loop(), threading.current_thread().name


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


class Service:
    def __init__(self) -> None:
        self.calls = 0

    async def ping(self, n: int) -> int:
        self.calls += 1
        return n + 1

    @async_to_sync
    async def sync_ping(self, n: int) -> int:
        return await self.ping(n)


class AsyncDoubler:
    async def __call__(self, x: int) -> int:
        return 2 * x


# -- forms and callables --------------------------------------------------------------------------


def test_call_and_decorator_forms() -> None:
    @async_to_sync
    async def bare(x: int) -> int:
        return x + 1

    @async_to_sync(timeout=WAIT)
    async def with_options(x: int) -> int:
        return x + 2

    assert async_to_sync(double)(21) == 42
    assert bare(1) == 2
    assert with_options(1) == 3
    assert bare.__name__ == "bare"
    assert not inspect.iscoroutinefunction(bare)


def test_bound_methods_partials_callable_objects_and_decorated_methods() -> None:
    service = Service()
    assert async_to_sync(service.ping)(1) == 2
    assert async_to_sync(functools.partial(double, 5))() == 10
    assert async_to_sync(AsyncDoubler())(4) == 8
    assert service.sync_ping(10) == 11
    assert service.calls == 2


def test_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="needs a callable"):
        async_to_sync(3)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="positive"):
        async_to_sync(double, timeout=0)

    def not_async() -> int:
        return 1

    with pytest.raises(TypeError, match=r"returns an awaitable; .*not_async returned int"):
        async_to_sync(not_async)()  # type: ignore[arg-type]


# -- which loop -----------------------------------------------------------------------------------


def test_plain_threads_share_one_persistent_loop() -> None:
    first_loop, first_thread = async_to_sync(where)()
    assert first_thread == "crossgate-loop"
    seen: list[asyncio.AbstractEventLoop] = []

    def other_thread() -> None:
        for _ in range(10):
            seen.append(async_to_sync(where)()[0])

    threads_before = threading.active_count()
    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join(WAIT)
    assert seen == [first_loop] * 10
    # No thread per call: only the one started here came and went.
    assert threading.active_count() == threads_before


def test_in_a_sync_to_async_thread_the_callers_loop_runs_it() -> None:
    def sync_view() -> tuple[asyncio.AbstractEventLoop, str]:
        return async_to_sync(where)()

    async def main() -> None:
        loop, thread = await sync_to_async(sync_view)()
        assert loop is asyncio.get_running_loop()
        assert thread == threading.current_thread().name

    run(main)


def test_in_a_wsgi_to_asgi_worker_the_server_loop_runs_it() -> None:
    seen: list[tuple[asyncio.AbstractEventLoop, str]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(async_to_sync(where)())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    adapter = WSGIToASGI(validator(app))

    async def main() -> tuple[asyncio.AbstractEventLoop, str]:
        result = await call_http(adapter)
        assert result.status == 200
        return asyncio.get_running_loop(), threading.current_thread().name

    try:
        server = run(main)
    finally:
        adapter.close()
    # One hand-off: the coroutine ran on the server's own loop, in its own thread.
    assert seen == [server]


def test_a_thread_running_a_loop_gets_a_clear_error() -> None:
    async def main() -> None:
        with pytest.raises(ConcurrencyError, match=r"await double\(\.\.\.\) directly") as info:
            async_to_sync(double)(1)
        assert isinstance(info.value, RuntimeError)

    run(main)


def test_a_closed_server_loop_is_skipped_for_the_persistent_one() -> None:
    closed = asyncio.new_event_loop()
    closed.close()

    def probe() -> str:
        set_server_loop(closed)
        return async_to_sync(where)()[1]

    assert contextvars.copy_context().run(probe) == "crossgate-loop"


def test_a_loop_closing_between_the_choice_and_the_call_falls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Closing:  # running when chosen, closed by the time the task is sent to it
        def is_running(self) -> bool:
            return True

        def is_closed(self) -> bool:
            return False

        def call_soon_threadsafe(self, *args: object) -> None:
            raise RuntimeError("Event loop is closed")

    monkeypatch.setattr(loops, "server_loop", Closing)
    assert async_to_sync(where)()[1] == "crossgate-loop"


def test_a_loop_closed_under_the_waiting_caller_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loops, "POLL", 0.01)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stopped = threading.Event()
    forever = threading.Thread(target=loop.run_forever, name="test-server-loop")
    forever.start()
    outcome: list[BaseException] = []

    async def hangs() -> None:
        started.set()
        await asyncio.Event().wait()

    def caller() -> None:
        set_server_loop(loop)
        try:
            async_to_sync(hangs)()
        except BaseException as exc:
            outcome.append(exc)
        stopped.set()

    worker = threading.Thread(target=contextvars.copy_context().run, args=(caller,))
    worker.start()
    assert started.wait(WAIT)
    loop.call_soon_threadsafe(loop.stop)
    forever.join(WAIT)
    loop.close()  # the task is still pending: the caller must not wait forever
    assert stopped.wait(WAIT)
    worker.join(WAIT)
    assert len(outcome) == 1
    assert isinstance(outcome[0], ConcurrencyError)
    assert "closed before it finished" in str(outcome[0])


# -- timeouts, errors, contextvars ----------------------------------------------------------------


def test_a_timeout_cancels_the_coroutine() -> None:
    cancelled = threading.Event()

    async def never_done() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError, match=r"did not finish within 0\.05 s; it was cancelled"):
        async_to_sync(never_done, timeout=0.05)()
    assert cancelled.wait(WAIT)


def test_an_interrupted_caller_cancels_the_coroutine(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C arriving while the calling thread waits: the coroutine must not run on alone.
    from crossgate.concurrency._pool import Waiter

    started = threading.Event()
    cancelled = threading.Event()
    real_wait = Waiter.wait

    def interrupted_wait(self: Waiter, timeout: float) -> bool:
        assert started.wait(WAIT)
        monkeypatch.setattr(Waiter, "wait", real_wait)
        raise KeyboardInterrupt

    monkeypatch.setattr(Waiter, "wait", interrupted_wait)

    async def long_running() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(KeyboardInterrupt):
        async_to_sync(long_running)()
    assert cancelled.wait(WAIT)


def test_the_exception_keeps_the_coroutines_traceback() -> None:
    async def failing_coroutine() -> None:
        await asyncio.sleep(0)
        raise LookupError("inner")

    with pytest.raises(LookupError, match="inner") as info:
        async_to_sync(failing_coroutine)()
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "failing_coroutine"


def test_contextvars_go_in_and_changes_come_back() -> None:
    async def change() -> str:
        seen = var.get()
        var.set("set in the coroutine")
        return seen

    def probe() -> tuple[str, str]:
        var.set("set by the caller")
        return async_to_sync(change)(), var.get()

    assert contextvars.copy_context().run(probe) == (
        "set by the caller",
        "set in the coroutine",
    )


def test_base_exceptions_of_the_coroutine_reach_the_caller() -> None:
    async def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        async_to_sync(interrupted)()
    # The loop thread survived it.
    assert async_to_sync(where)()[1] == "crossgate-loop"


# -- the persistent loop: fork and exit -----------------------------------------------------------


def test_a_fork_starts_a_new_loop() -> None:
    old_loop = async_to_sync(where)()[0]
    old_portal = loops._portal
    assert old_portal is not None
    loops._forget_portal()  # what the after-fork hook does in a child
    try:
        new_loop = async_to_sync(where)()[0]
        new_portal = loops._portal
    finally:
        # Both loop threads run in this one process: stop them both.
        old_portal.stop()
        if loops._portal is not None:
            loops._portal.stop()
            loops._portal = None
    assert new_loop is not old_loop
    assert new_portal is not old_portal


def _run_script(code: str) -> str:
    proc = subprocess.run(  # bounded: the timeout kills a hung child
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_forked_child_gets_its_own_loop_thread() -> None:
    out = _run_script(
        """
import asyncio, os, threading
from crossgate.concurrency import async_to_sync

async def ident():
    return threading.current_thread(), os.getpid()

parent = async_to_sync(ident)()
pid = os.fork()
if pid == 0:
    # The parent's loop thread does not exist here: a new one must answer.
    child = async_to_sync(ident)()
    ok = child[1] == os.getpid() and child[0] is not parent[0] and child[0].is_alive()
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
print("child-exit", os.waitstatus_to_exitcode(status))
print("parent-again", async_to_sync(ident)() == parent)
"""
    )
    assert out.split() == ["child-exit", "0", "parent-again", "True"]


def test_the_loop_thread_is_stopped_at_exit() -> None:
    # atexit runs handlers last-registered first: this one, registered before crossgate is
    # imported, runs after crossgate's and sees whether the loop thread is gone.
    out = _run_script(
        """
import atexit, threading

def report():
    names = [t.name for t in threading.enumerate()]
    print("loop-alive", "crossgate-loop" in names)
    print("pool-alive", any(n.startswith("crossgate-sync-") for n in names))

atexit.register(report)

import asyncio
from crossgate.concurrency import async_to_sync, sync_to_async

async def main():
    return await sync_to_async(lambda: 1)()

asyncio.run(main())
async def pending():
    await asyncio.Event().wait()
print(async_to_sync(main)())
try:
    async_to_sync(pending, timeout=0.01)()
except TimeoutError:
    print("timed-out")
"""
    )
    assert out.split() == ["1", "timed-out", "loop-alive", "False", "pool-alive", "False"]


def test_exit_cancels_coroutines_left_on_the_loop() -> None:
    # A coroutine whose caller gave up and that ignores the first cancellation is cancelled
    # again at exit and gets to run its cleanup.
    out = _run_script(
        """
import asyncio
from crossgate.concurrency import async_to_sync

async def stubborn():
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass
    try:
        await asyncio.Event().wait()
    finally:
        print("cleanup-ran")

try:
    async_to_sync(stubborn, timeout=0.01)()
except TimeoutError:
    print("timed-out")
"""
    )
    assert out.split() == ["timed-out", "cleanup-ran"]
