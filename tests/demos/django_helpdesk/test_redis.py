"""The Redis variant: live updates across two uvicorn worker processes, through a real Redis.

Each test module's `redis-server` listens on a unix socket in a temporary directory (and on no
TCP port: ``--port 0`` turns TCP off), so no port is ever guessed and nothing but this test can
reach it; it is stopped by its PID. Stage 2 runs under ``uvicorn --workers 2`` with ``REDIS_URL``
pointing at it; the websocket endpoint's ``hello`` frame says which worker holds a connection,
so the test keeps opening connections until it holds one on each worker (bounded), then proves a
comment posted to either reaches both.

The `RedisHub` itself is also tested in process against the same server: round trip between
two hubs (two processes, in effect), connections closed at stop, a Redis that dies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import redis
from websockets.asyncio.client import connect

from demo_projects.django_helpdesk.live.redis_hub import CHANNEL_PREFIX, RedisHub
from tests.demos.django_helpdesk._live import (
    FRAME_TIMEOUT,
    Live,
    assert_comment_event,
    log_problems,
    next_event,
    post_form_comment,
    run_against,
)
from tests.demos.django_helpdesk.conftest import HelpdeskServer, StartHelpdesk, child_pids

pytestmark = pytest.mark.servers

TICKET = 5
WORKERS = 2
# How many websockets the test may open to find one on each worker (BATCH at a time, see
# one_per_worker): one worker can win a whole batch, but not this many in a row.
MAX_CONNECTIONS = 40
# Websockets opened at once while looking for both workers (see one_per_worker).
BATCH = 8
READY_TIMEOUT = 10.0
# How long every uvicorn worker may take to import Django and run its lifespan startup (the
# first one up answers the fixture's readiness GET; on a loaded machine the other can be
# seconds behind).
WORKERS_READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
WAIT = 10.0


class RedisServer:
    """A `redis-server` on a unix socket only, in a directory of its own."""

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail("redis-server is missing: run `make test`, which installs Debian's redis")
        self.socket_path = directory / "redis.sock"
        self.log_path = directory / "redis.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    executable,
                    *("--port", "0", "--unixsocket", str(self.socket_path)),
                    *("--unixsocketperm", "700", "--dir", str(directory)),
                    *("--save", "", "--appendonly", "no"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _ping(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(str(self.socket_path))
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
            except OSError:
                return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._ping():
            if self.process.poll() is not None or time.monotonic() >= deadline:
                self.stop()
                pytest.fail(f"redis-server did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def client_count(self) -> int:
        """How many clients are connected, this query's own connection excluded."""
        with redis.Redis(unix_socket_path=str(self.socket_path)) as client:
            return len(client.client_list()) - 1

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stage2_workers(start_helpdesk: StartHelpdesk, redis_server: RedisServer) -> HelpdeskServer:
    server = start_helpdesk(2, "uvicorn", workers=WORKERS, env={"REDIS_URL": redis_server.url})
    # The server answered a GET once ONE worker was up. Until the other has finished its startup
    # every connection goes to the first, however many the test opens: wait for all of them.
    deadline = time.monotonic() + WORKERS_READY_TIMEOUT
    while server.log().count("Application startup complete.") < WORKERS:
        if server.process.poll() is not None or time.monotonic() >= deadline:
            pytest.fail(f"not every worker started: {server.describe()}")
        time.sleep(0.05)
    return server


async def _follow(server: HelpdeskServer) -> tuple[AsyncExitStack, Live]:
    """One websocket on `TICKET` and its hello frame; the stack closes it."""
    attempt = AsyncExitStack()
    try:
        connection = await attempt.enter_async_context(
            connect(f"{server.ws_url}/ws/tickets/{TICKET}/", open_timeout=FRAME_TIMEOUT)
        )
        hello = json.loads(await asyncio.wait_for(connection.recv(), FRAME_TIMEOUT))
    except BaseException:
        await attempt.aclose()
        raise
    return attempt, Live(connection, hello)


async def one_per_worker(server: HelpdeskServer, stack: AsyncExitStack) -> dict[int, Live]:
    """Open websockets on `TICKET` until one is held by each worker; the others are closed.

    The workers share one listening socket, and which of them accepts a connection is up to
    the kernel and the scheduler: opened one at a time, every connection can go to the worker
    that just accepted the previous one. Opened a batch at a time and all kept open, they reach
    a worker that is busy with the others' handshakes, so the other one accepts some.
    """
    found: dict[int, Live] = {}
    async with AsyncExitStack() as spare:
        for _ in range(MAX_CONNECTIONS // BATCH):
            opened = await asyncio.gather(
                *(_follow(server) for _ in range(BATCH)), return_exceptions=True
            )
            failures = [item for item in opened if isinstance(item, BaseException)]
            for item in opened:
                if isinstance(item, BaseException):
                    continue
                attempt, live = item
                if live.pid in found:
                    spare.push_async_exit(attempt)
                else:
                    found[live.pid] = live
                    stack.push_async_exit(attempt)
            if failures:
                raise failures[0]
            if len(found) == WORKERS:
                return found
    pytest.fail(f"{MAX_CONNECTIONS} websockets all went to the workers {sorted(found)}")


def test_a_comment_reaches_the_websockets_of_both_workers(
    stage2_workers: HelpdeskServer,
) -> None:
    async def main() -> None:
        async with AsyncExitStack() as stack:
            pages = await one_per_worker(stage2_workers, stack)
            # The two connections are held by the uvicorn workers, not by the supervisor.
            assert set(pages) <= child_pids(stage2_workers.process.pid)
            client = await stack.enter_async_context(stage2_workers.async_client())
            for n in range(3):
                body = f"across workers {n}"
                response = await post_form_comment(client, TICKET, "Margaret", body)
                assert response.status_code == 302, response.text
                # Whichever worker saved it, both workers' pages get it, exactly once: the next
                # frame on each is this comment, not a repeat of the previous one.
                ids = {
                    assert_comment_event(await next_event(page), TICKET, "Margaret", body)
                    for page in pages.values()
                }
                assert len(ids) == 1

    run_against(stage2_workers, main)


def test_the_workers_close_their_redis_connections_at_shutdown(
    stage2_workers: HelpdeskServer, redis_server: RedisServer
) -> None:
    """Last in the module: stop the supervisor by PID; its workers exit with it (the fixture's
    stop checks no process is left), each after its lifespan shutdown stopped the hub."""

    async def connect_both() -> None:
        # Each worker's hub connects to Redis on its first websocket.
        async with AsyncExitStack() as stack:
            await one_per_worker(stage2_workers, stack)

    run_against(stage2_workers, connect_both)
    assert redis_server.client_count() >= WORKERS, stage2_workers.describe()
    stage2_workers.stop()
    log = stage2_workers.log()
    assert log.count("Application shutdown complete.") == WORKERS, log
    # Said by each hub after it closed its connections (process exit would close them anyway,
    # so Redis's own client count could not tell).
    assert log.count("closed its Redis connections") == WORKERS, log
    assert not log_problems(log), log


# -- RedisHub in process ------------------------------------------------------------------------


def test_messages_cross_between_hubs_once(redis_server: RedisServer) -> None:
    before = redis_server.client_count()

    async def main() -> None:
        here, there = RedisHub(redis_server.url), RedisHub(redis_server.url)
        await here.start()
        await there.start()
        try:
            async with (
                here.subscribe(7) as mine,
                there.subscribe(7) as theirs,
                there.subscribe(8) as other,
            ):
                await here.publish(7, {"n": 1})
                await there.publish(8, {"n": 2})
                # The publisher's own subscriber gets it once, from Redis.
                assert json.loads(await asyncio.wait_for(anext(mine), WAIT)) == {"n": 1}
                assert json.loads(await asyncio.wait_for(anext(theirs), WAIT)) == {"n": 1}
                assert json.loads(await asyncio.wait_for(anext(other), WAIT)) == {"n": 2}
                await here.publish(7, {"n": 3})
                assert json.loads(await asyncio.wait_for(anext(mine), WAIT)) == {"n": 3}
            # A publishing and a subscribing connection per hub, kept while the hub runs.
            assert redis_server.client_count() == before + 4
        finally:
            await here.stop()
            await there.stop()
        assert redis_server.client_count() == before

    asyncio.run(main())


def test_a_hub_without_a_loop_publishes_on_a_connection_of_its_own(
    redis_server: RedisServer,
) -> None:
    """A hub never started (lifespan off) still reaches the other processes' websockets."""
    before = redis_server.client_count()

    async def main() -> None:
        listening = RedisHub(redis_server.url)
        await listening.start()
        try:
            async with listening.subscribe(7) as subscription:
                unbound = RedisHub(redis_server.url)
                await unbound.publish(7, {"n": 1})
                assert unbound.loop is None
                assert json.loads(await asyncio.wait_for(anext(subscription), WAIT)) == {"n": 1}
        finally:
            await listening.stop()

    asyncio.run(main())
    assert redis_server.client_count() == before


def test_a_dead_redis_closes_the_websockets_and_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    doomed = RedisServer(tmp_path)

    async def main() -> None:
        hub = RedisHub(doomed.url)
        await hub.start()
        try:
            async with hub.subscribe(7) as subscription:
                doomed.process.send_signal(signal.SIGKILL)
                with pytest.raises(StopAsyncIteration):
                    await asyncio.wait_for(anext(subscription), WAIT)
                assert subscription.reason == "error"
            # The next websocket tries again, and fails while Redis is down.
            with pytest.raises(redis.ConnectionError):
                async with hub.subscribe(7):
                    pass  # pragma: no cover - the subscription fails
            assert hub.subscriber_count(7) == 0
        finally:
            await hub.stop()

    try:
        with caplog.at_level(logging.ERROR):
            asyncio.run(main())
    finally:
        doomed.stop()
    assert "failed; closing its websockets" in caplog.text


def test_a_bad_redis_url_fails_at_once() -> None:
    with pytest.raises(ValueError, match="scheme"):
        RedisHub("http://127.0.0.1/")
    assert repr(RedisHub("redis://127.0.0.1:1/0")) == "RedisHub('redis://127.0.0.1:1/0')"


def test_messages_on_foreign_channels_are_ignored(redis_server: RedisServer) -> None:
    """Only ``<prefix><ticket id>`` channels carry comments; anything else matching the
    pattern (another program's key space, a typo) is dropped, not delivered to ticket 0."""

    async def main() -> None:
        hub = RedisHub(redis_server.url)
        await hub.start()
        try:
            async with hub.subscribe(7) as subscription:
                with redis.Redis(unix_socket_path=str(redis_server.socket_path)) as raw:
                    raw.publish(f"{CHANNEL_PREFIX}not-a-number", "junk")
                    raw.publish(f"{CHANNEL_PREFIX}7", "real")
                assert await asyncio.wait_for(anext(subscription), WAIT) == "real"
        finally:
            await hub.stop()

    asyncio.run(main())


def test_stopping_before_redis_confirms_fails_the_waiting_websockets(tmp_path: Path) -> None:
    """A Redis that accepts connections but never answers: the websocket waiting for its
    subscription fails once the hub stops, and no task is left behind."""
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = tmp_path / "silent.sock"
    silent.bind(str(path))
    silent.listen(8)  # the kernel completes connections nobody accepts

    async def main() -> None:
        hub = RedisHub(f"unix://{path}")
        await hub.start()

        async def follow() -> None:
            async with hub.subscribe(7):
                pass  # pragma: no cover - the subscription never completes

        waiting = asyncio.create_task(follow())
        while hub._listener is None:
            await asyncio.sleep(0.01)
        await hub.stop()
        with pytest.raises(RuntimeError, match="stopped"):
            await asyncio.wait_for(waiting, WAIT)
        assert hub.subscriber_count(7) == 0
        assert asyncio.all_tasks() == {asyncio.current_task()}

    try:
        asyncio.run(main())
    finally:
        silent.close()


def test_stopping_an_unused_hub_is_a_no_op() -> None:
    async def main() -> None:
        hub = RedisHub("unix:///nonexistent/redis.sock")
        await hub.start()
        await hub.stop()
        await hub.stop()

    asyncio.run(main())
