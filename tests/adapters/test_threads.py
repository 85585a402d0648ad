"""WSGIToASGI threads: a bounded pool, parallel requests, contextvars, queue timeout, seam."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from crossgate import server_loop
from crossgate.testing import HTTPResult, call_http, http_scope
from crossgate.types import StartResponse, WSGIEnvironment
from tests.adapters.conftest import MakeAdapter, run

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def test_runs_in_a_named_worker_thread_with_contextvars(make_adapter: MakeAdapter) -> None:
    seen: list[tuple[str, str]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.append((threading.current_thread().name, request_id.get()))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    adapter = make_adapter(app)

    async def main() -> None:
        request_id.set("req-42")
        await call_http(adapter)

    run(main)
    assert len(seen) == 1
    name, value = seen[0]
    assert name.startswith("crossgate-wsgi")
    assert name != threading.main_thread().name
    assert value == "req-42"


def test_requests_run_in_parallel(make_adapter: MakeAdapter) -> None:
    # Proven without timing: four requests all pass a barrier of four only when four worker
    # threads run the app at the same time. Serialised, the barrier would break.
    barrier = threading.Barrier(4, timeout=10)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        barrier.wait()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"passed"]

    adapter = make_adapter(app, workers=4)

    async def main() -> list[HTTPResult]:
        return list(await asyncio.gather(*(call_http(adapter) for _ in range(4))))

    results = run(main)
    assert [r.body for r in results] == [b"passed"] * 4


def test_pool_is_bounded_and_requests_wait_for_a_worker(make_adapter: MakeAdapter) -> None:
    running = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(10)
        with lock:
            running -= 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    adapter = make_adapter(app, workers=2)

    async def main() -> list[HTTPResult]:
        tasks = [asyncio.ensure_future(call_http(adapter)) for _ in range(6)]
        while peak < 2:
            await asyncio.sleep(0.01)
        release.set()
        return list(await asyncio.gather(*tasks))

    results = run(main)
    assert [r.status for r in results] == [200] * 6
    assert peak == 2


def test_queue_timeout_answers_503_with_retry_after(make_adapter: MakeAdapter) -> None:
    entered = threading.Event()
    release = threading.Event()
    calls = 0

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        nonlocal calls
        calls += 1
        entered.set()
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow"]

    adapter = make_adapter(app, workers=1, queue_timeout=0.05, retry_after=7)

    async def main() -> tuple[HTTPResult, HTTPResult]:
        first = asyncio.ensure_future(call_http(adapter))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        second = await call_http(adapter)
        release.set()
        return await first, second

    first, second = run(main)
    assert first.status == 200
    assert second.status == 503
    assert second.header("retry-after") == "7"
    assert calls == 1, "the expired request must never run the app"


def test_shared_executor(make_adapter: MakeAdapter) -> None:
    names: list[str] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        names.append(threading.current_thread().name)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="shared-pool") as pool:
        first = make_adapter(app, executor=pool)
        second = make_adapter(app, executor=pool)

        async def main() -> None:
            await call_http(first)
            await call_http(second)

        run(main)
        first.close()  # must leave a shared executor alone
        assert pool.submit(lambda: 1).result() == 1
    assert len(names) == 2
    assert all(name.startswith("shared-pool") for name in names)


def test_shut_down_executor_answers_503(make_adapter: MakeAdapter) -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    result = run(lambda: call_http(make_adapter(app, executor=pool)))
    assert result.status == 503


def test_a_request_the_shared_executor_drops_gets_503(make_adapter: MakeAdapter) -> None:
    # shutdown(cancel_futures=True) drops queued work: that request must be answered, not left
    # waiting for a worker that will never come.
    entered = threading.Event()
    release = threading.Event()
    calls = 0

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        nonlocal calls
        calls += 1
        entered.set()
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow"]

    pool = ThreadPoolExecutor(max_workers=1)
    adapter = make_adapter(app, executor=pool, retry_after=3)

    async def main() -> tuple[HTTPResult, HTTPResult]:
        first = asyncio.ensure_future(call_http(adapter))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        second = asyncio.ensure_future(call_http(adapter))
        await asyncio.sleep(0.05)  # queued behind the first
        pool.shutdown(wait=False, cancel_futures=True)
        dropped = await asyncio.wait_for(second, 5)
        release.set()
        return await first, dropped

    first, second = run(main)
    pool.shutdown()
    assert first.status == 200
    assert second.status == 503
    assert second.header("retry-after") == "3"
    assert b"shut down" in second.body
    assert calls == 1


def test_the_pool_serves_in_a_forked_child() -> None:
    # gunicorn --preload: the adapter's pool started threads in the parent, which a forked
    # child does not have. The pool starts afresh there, and the server loop recorded in the
    # parent is not the child's.
    script = """
import asyncio, os
from crossgate import WSGIToASGI, server_loop
from crossgate.testing import call_http

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"pid %d" % os.getpid()]

adapter = WSGIToASGI(app)
assert asyncio.run(call_http(adapter)).status == 200
pid = os.fork()
if pid == 0:
    result = asyncio.run(call_http(adapter))
    os._exit(0 if result.body == b"pid %d" % os.getpid() else 1)
_, status = os.waitpid(pid, 0)
print("child-exit", os.waitstatus_to_exitcode(status))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["child-exit", "0"]


def test_server_loop_seam(make_adapter: MakeAdapter) -> None:
    async def double(value: int) -> tuple[int, asyncio.AbstractEventLoop]:
        return value * 2, asyncio.get_running_loop()

    seen: list[object] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        loop = server_loop()
        assert loop is not None
        seen.append(asyncio.run_coroutine_threadsafe(double(21), loop).result(5))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return []

    adapter = make_adapter(app)

    async def main() -> asyncio.AbstractEventLoop:
        await call_http(adapter)
        return asyncio.get_running_loop()

    loop = run(main)
    assert seen == [(42, loop)]
    assert server_loop() is None  # not in a worker thread


def test_server_loop_is_none_once_the_loop_closed() -> None:
    from crossgate.concurrency import set_server_loop

    loop = asyncio.new_event_loop()
    loop.close()

    def probe() -> object:
        set_server_loop(loop)
        return server_loop()

    assert contextvars.copy_context().run(probe) is None


def test_lifespan_shutdown_stops_the_pool(make_adapter: MakeAdapter) -> None:
    from crossgate.testing import call_lifespan

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"x"

    adapter = make_adapter(app)

    async def main() -> None:
        await call_http(adapter, http_scope())
        assert adapter._own_executor is not None
        await call_lifespan(adapter)

    run(main)
    assert adapter._own_executor is None


def test_close_lets_queued_requests_finish(make_adapter: MakeAdapter) -> None:
    entered = threading.Event()
    release = threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        entered.set()
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"served"]

    adapter = make_adapter(app, workers=1)

    async def main() -> list[HTTPResult]:
        tasks = [asyncio.ensure_future(call_http(adapter)) for _ in range(2)]
        while not entered.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # let the second request reach the pool's queue
        adapter.close(wait=False)
        release.set()
        return list(await asyncio.gather(*tasks))

    results = run(main)
    assert [r.body for r in results] == [b"served", b"served"]
