"""A child process forked from a crossgate thread can call `async_to_sync`.

multiprocessing's ``fork`` start method copies only the forking thread. A loop the parent
cached for that thread (the loop awaiting a `sync_to_async` call, the ASGI server's loop of a
``WSGIToASGI`` worker) still looks "running" in the child, with no thread to run it: an
`async_to_sync` sent there would wait forever. Each test forks from one kind of crossgate
thread, calls `async_to_sync` (which itself makes a `sync_to_async` call) in the child, and
waits for the child's answer for a bounded time; a child that does not answer is killed.

Python 3.12 and later warn (``DeprecationWarning``) when a process with threads forks. Under
pytest's ``filterwarnings = error`` CPython 3.12 and 3.13 drop the error that warning becomes
inside ``os.fork`` (seen here with 3.12.1 and 3.13.0); these tests fork from threads on
purpose, so each says so and ignores that one warning rather than rely on it being dropped.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from multiprocessing.connection import Connection
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment
from wsgiref.validate import validator

import pytest

from crossgate.adapters.wsgi_to_asgi import WSGIToASGI
from crossgate.concurrency import _loops as loops
from crossgate.concurrency import async_to_sync, server_loop, sync_to_async
from crossgate.testing import call_http
from tests.concurrency.conftest import WAIT, run

FORK_FROM_A_THREAD = pytest.mark.filterwarnings(
    r"ignore:This process \(pid=\d+\) is multi-threaded, use of fork\(\):DeprecationWarning"
)

Answer = tuple[str, Any]


def _in_child(conn: Connection, sensitive: bool) -> None:
    # The child: its only thread is the crossgate thread that forked it.
    async def work() -> tuple[int, int, str]:
        inner = await sync_to_async(os.getpid, thread_sensitive=sensitive)()
        return os.getpid(), inner, threading.current_thread().name

    try:
        result = async_to_sync(work)()
    except BaseException as exc:  # pragma: no cover - reported to the parent
        conn.send(("error", repr(exc)))
    else:
        conn.send(("ok", result))
    conn.close()


def fork_and_wait(sensitive: bool) -> tuple[Answer, int | None]:
    """Fork a child running `_in_child`; its answer (or ``("hung", None)``) and its PID."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_in_child, args=(sender, sensitive), daemon=True)
    process.start()
    sender.close()
    try:
        answer: Answer = receiver.recv() if receiver.poll(WAIT) else ("hung", None)
    except EOFError:  # pragma: no cover - the child died without answering
        answer = ("died", process.exitcode)
    finally:
        receiver.close()
        process.join(WAIT)
        if process.is_alive():  # pragma: no cover - a hung child
            process.kill()
            process.join(WAIT)
    return answer, process.pid


def _check(answer: Answer, pid: int | None) -> None:
    status, value = answer
    assert status == "ok", value
    child_pid, inner_pid, loop_thread = value
    assert child_pid == pid != os.getpid()
    assert inner_pid == pid
    assert loop_thread == "crossgate-loop"  # the child's own loop thread


@FORK_FROM_A_THREAD
@pytest.mark.parametrize("sensitive", [True, False], ids=["sensitive", "parallel"])
def test_fork_from_a_sync_to_async_thread(sensitive: bool) -> None:
    async def main() -> tuple[Answer, int | None]:
        return await sync_to_async(fork_and_wait, thread_sensitive=sensitive)(sensitive)

    _check(*run(main))


@FORK_FROM_A_THREAD
def test_fork_from_a_wsgi_to_asgi_worker_thread() -> None:
    seen: list[tuple[Answer, int | None]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        assert server_loop() is not None  # this thread knows the server's loop
        seen.append(fork_and_wait(True))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"forked"]

    adapter = WSGIToASGI(validator(app))

    async def main() -> bytes:
        try:
            result = await call_http(adapter, timeout=4 * WAIT)
        finally:
            adapter.close()
        assert result.error is None, result.error
        return result.body

    assert run(main) == b"forked"
    _check(*seen[0])


def test_a_server_loop_from_another_process_is_not_used() -> None:
    # The check the fork tests rely on, seen from this process: the recorded loop is
    # running, but it was recorded before a fork (what the after-fork hook counts).
    async def main() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()

        def worker() -> tuple[bool, bool]:
            loops.set_server_loop(loop)
            here = server_loop() is loop
            loops._new_process()  # what runs in a forked child
            try:
                elsewhere = server_loop() is None
            finally:
                loops._process -= 1
            return here, elsewhere

        return await asyncio.get_running_loop().run_in_executor(None, worker)

    assert run(main) == (True, True)


def test_a_one_thread_pool_of_another_process_has_no_owner() -> None:
    # Its thread is the parent's: deadlock detection must not compare the child's threads
    # with it.
    from crossgate.concurrency._pool import Pool

    pool = Pool("crossgate-sensitive-", 1)
    done = threading.Event()

    class Job:
        def run(self) -> None:
            done.set()

        def dropped_by(self, future: object) -> None:  # pragma: no cover
            """Only called by a foreign executor; a pool never calls it."""

    pool.put(Job())
    assert done.wait(WAIT)
    thread, old_queue = pool.owner(), pool._queue
    assert thread is not None
    pool._reset()  # what the after-fork hook does in a child
    assert pool.owner() is None
    old_queue.put(None)  # the "parent's" thread lives in this process: stop it
    thread.join(WAIT)
