"""The Redis variant: Channels' layer across two uvicorn worker processes, through a real Redis.

Each test module's `redis-server` listens on a unix socket in a temporary directory (and on no
TCP port: ``--port 0`` turns TCP off), so no port is ever guessed and nothing but this test can
reach it; it is stopped by its PID. Stage 2 runs under ``uvicorn --workers 2`` with ``REDIS_URL``
pointing at it, so the channel layer is ``channels_redis``; the consumer's ``hello`` frame says
which worker holds a connection, so the test keeps opening connections until it holds one on
each worker (bounded), then proves a comment posted to either reaches both, with crossgate's
``async_to_sync`` and with asgiref's, and after the sockets sat idle longer than redis-py's
default read timeout. Two real browsers, logged in as two users, do the same.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import BrowserContext, Page, WebSocket
from websockets.asyncio.client import connect

from tests.demos._browser import browser_context, chromium
from tests.demos.django_helpdesk._live import (
    FRAME_TIMEOUT,
    Live,
    assert_comment_event,
    log_problems,
    login,
    next_event,
    post_form_comment,
    run_against,
    ws_headers,
)
from tests.demos.django_helpdesk.conftest import HelpdeskServer, StartHelpdesk, child_pids
from tests.demos.django_helpdesk.test_browser import log_in

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
# Longer than redis-py 8's default socket read timeout (5 s), which channels_redis 4.3's
# 5 s blocking reads run into unless the host entry sets "socket_timeout": None (#422).
IDLE = 7.0


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


def start_workers(
    start_helpdesk: StartHelpdesk, redis_server: RedisServer, bridge: str = "crossgate"
) -> HelpdeskServer:
    server = start_helpdesk(
        2,
        "uvicorn",
        workers=WORKERS,
        env={"REDIS_URL": redis_server.url, "HELPDESK_ASYNC_TO_SYNC": bridge},
    )
    # The server answered a GET once ONE worker was up. Until the other has finished its startup
    # every connection goes to the first, however many the test opens: wait for all of them.
    deadline = time.monotonic() + WORKERS_READY_TIMEOUT
    while server.log().count("Application startup complete.") < WORKERS:
        if server.process.poll() is not None or time.monotonic() >= deadline:
            pytest.fail(f"not every worker started: {server.describe()}")
        time.sleep(0.05)
    return server


@pytest.fixture(scope="module")
def stage2_workers(start_helpdesk: StartHelpdesk, redis_server: RedisServer) -> HelpdeskServer:
    return start_workers(start_helpdesk, redis_server)


async def _follow(server: HelpdeskServer, session: str) -> tuple[AsyncExitStack, Live]:
    """One websocket on `TICKET` and its hello frame; the stack closes it."""
    attempt = AsyncExitStack()
    try:
        connection = await attempt.enter_async_context(
            connect(
                f"{server.ws_url}/ws/tickets/{TICKET}/",
                open_timeout=FRAME_TIMEOUT,
                additional_headers=ws_headers(server, session),
            )
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
    async with server.async_client() as client:
        session = await login(client)
    found: dict[int, Live] = {}
    async with AsyncExitStack() as spare:
        for _ in range(MAX_CONNECTIONS // BATCH):
            opened = await asyncio.gather(
                *(_follow(server, session) for _ in range(BATCH)), return_exceptions=True
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


async def comment_reaches_both_workers(server: HelpdeskServer, *, idle: float = 0) -> None:
    async with AsyncExitStack() as stack:
        pages = await one_per_worker(server, stack)
        # The two connections are held by the uvicorn workers, not by the supervisor.
        assert set(pages) <= child_pids(server.process.pid)
        if idle:
            await asyncio.sleep(idle)
        client = await stack.enter_async_context(server.async_client())
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


def test_a_comment_reaches_the_websockets_of_both_workers(
    stage2_workers: HelpdeskServer,
) -> None:
    run_against(stage2_workers, lambda: comment_reaches_both_workers(stage2_workers))


def test_idle_websockets_keep_their_layer_connection(stage2_workers: HelpdeskServer) -> None:
    """Idle longer than redis-py's default read timeout, the sockets still get the comment:
    the settings' host entry has ``"socket_timeout": None`` (channels_redis #422)."""
    run_against(stage2_workers, lambda: comment_reaches_both_workers(stage2_workers, idle=IDLE))
    assert "Timeout reading from" not in stage2_workers.log(), stage2_workers.describe()


def test_asgirefs_async_to_sync_works_across_workers_too(
    start_helpdesk: StartHelpdesk, redis_server: RedisServer
) -> None:
    """asgiref's `async_to_sync`, from the `WSGIToASGI` thread, runs `group_send` on a new loop
    with a new Redis connection each time; the comment gets through all the same."""
    server = start_workers(start_helpdesk, redis_server, "asgiref")
    run_against(server, lambda: comment_reaches_both_workers(server))
    server.stop()
    assert not log_problems(server.log()), server.describe()


@contextmanager
def accepts_spread(base_url: str, threads: int = 4, most: int = 300) -> Iterator[None]:
    """Short requests, each on a new connection, from a few threads while the block runs.

    Bounded: each thread stops when the block ends, or after ``most`` requests.
    """
    stop = threading.Event()

    def keep_asking() -> None:
        headers = {"Connection": "close"}
        with httpx.Client(base_url=base_url, timeout=5.0, headers=headers) as client:
            for _ in range(most):
                if stop.is_set():
                    return
                try:
                    client.get("/")
                except httpx.HTTPError:
                    return

    workers = [threading.Thread(target=keep_asking, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10.0)


@pytest.mark.browser
def test_two_users_in_two_browsers_see_each_others_comments_across_workers(
    stage2_workers: HelpdeskServer,
) -> None:
    """Two browsers (contexts: own cookies), logged in as two users, on the same ticket, their
    sockets held by different workers; a comment posted through the legacy form in one
    appears in the other, which no worker but its own could have pushed."""
    url = f"{stage2_workers.base_url}/tickets/{TICKET}/"
    with (
        chromium() as browser,
        browser_context(browser) as demo,
        browser_context(browser) as admin,
    ):
        log_in(demo, stage2_workers.base_url, "demo", "demo")
        log_in(admin, stage2_workers.base_url, "admin", "admin")
        pids: dict[str, int] = {}

        def open_ticket(context_name: str, context: BrowserContext) -> Page:
            hello: list[int] = []
            page = context.new_page()

            def on_socket(socket: WebSocket) -> None:
                def on_frame(payload: str | bytes) -> None:
                    data = json.loads(payload)
                    if data.get("type") == "hello":
                        hello.append(int(data["pid"]))

                socket.on("framereceived", on_frame)

            page.on("websocket", on_socket)
            page.goto(url)
            page.locator("#live-status", has_text="live").wait_for()
            deadline = time.monotonic() + FRAME_TIMEOUT
            while not hello and time.monotonic() < deadline:
                page.wait_for_timeout(50)
            assert hello, "no hello frame"
            pids[context_name] = hello[0]
            return page

        demo_page = open_ticket("demo", demo)
        admin_page: Page | None = None
        # One connection at a time to idle workers tends to land on the same one (the kernel
        # wakes the last waiter): short requests in the background keep both accepting.
        with accepts_spread(stage2_workers.base_url):
            for _ in range(MAX_CONNECTIONS // BATCH * 2):
                candidate = open_ticket("admin", admin)
                if pids["admin"] != pids["demo"]:
                    admin_page = candidate
                    break
                candidate.close()
        assert admin_page is not None, f"every socket went to worker {pids['demo']}"
        assert set(pids.values()) <= child_pids(stage2_workers.process.pid)

        body = "Posted by demo, pushed by the other worker"
        demo_page.fill("#id_author", "demo")
        demo_page.fill("#id_body", body)
        with demo_page.expect_navigation():
            demo_page.click("#comment-form button[type=submit]")
        item = admin_page.locator("li.comment.live", has_text=body)
        item.wait_for()
        assert item.locator("strong.author").inner_text() == "demo"


def test_the_workers_close_their_redis_connections_at_shutdown(
    stage2_workers: HelpdeskServer, redis_server: RedisServer
) -> None:
    """Last in the module: stop the supervisor by PID; its workers exit with it (the fixture's
    stop checks no process is left), each after its lifespan shutdown closed the layer."""

    async def connect_both() -> None:
        # Each worker's channel layer connects to Redis on its first websocket.
        async with AsyncExitStack() as stack:
            await one_per_worker(stage2_workers, stack)

    run_against(stage2_workers, connect_both)
    assert redis_server.client_count() >= WORKERS, stage2_workers.describe()
    stage2_workers.stop()
    log = stage2_workers.log()
    assert log.count("Application shutdown complete.") == WORKERS, log
    # Said by each worker after it closed the layer's pools (process exit would close them
    # anyway, so Redis's own client count could not tell).
    assert log.count("closed the channel layer's Redis connections") == WORKERS, log
    assert not log_problems(log), log
