"""The gunicorn demo as a real process: FastAPI in two sync workers through ``ASGIToWSGI``.

gunicorn runs the README's command, ``gunicorn --config gunicorn_conf.py``, so the demo's own
config is what sets the app, two sync workers, ``--preload`` and the lifespan startup in
``post_fork``; the test only binds port 0, with the SQLite store in the test's tmp directory.
One server serves the whole module; the last test stops it and reads the workers' exit in its
log.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo_projects.asgi_on_gunicorn.main import DATA_DIR_VARIABLE
from tests.servers._servers import GUNICORN_LISTENING, ServerProcess, running

pytestmark = pytest.mark.servers

APP = "demo_projects.asgi_on_gunicorn.wsgi:application"
CONFIG = "demo_projects/asgi_on_gunicorn/gunicorn_conf.py"
WORKERS = 2
CLIENT_TIMEOUT = 10.0
# Bounded waits for what happens after a response (a job, a stream noticing its client left).
WAIT_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
# What a clean run never logs: asyncio's complaint about a task dropped while pending (a2wsgi
# logs one per early-closed response), a coroutine never awaited, a traceback, a warning (such
# as an app cancelled because it did not notice its client left).
UNCLEAN = (
    "Task was destroyed but it is pending",
    "was never awaited",
    "Traceback",
    "Error handling request",
    "[ERROR]",
    "[WARNING]",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("asgi-on-gunicorn-data")
    log = tmp_path_factory.mktemp("asgi-on-gunicorn") / "gunicorn.log"
    command = [
        *(sys.executable, "-m", "gunicorn", "--config", CONFIG),
        # What the test must change: port 0; no control socket (gunicorn 24+ opens one path
        # under ~/.gunicorn for every instance); a short graceful stop.
        *("--bind", "127.0.0.1:0", "--no-control-socket", "--graceful-timeout", "2"),
    ]
    # ServerProcess hands the child a copy of os.environ: set the data directory around it.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DATA_DIR_VARIABLE, str(data_dir))
        process = ServerProcess("gunicorn", APP, log, command=command, listening=GUNICORN_LISTENING)
    with running(process):
        yield process


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as client:
        yield client


def worker_pids(server: ServerProcess) -> set[int]:
    return {int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", server.log())}


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    return int(stat.rpartition(")")[2].split()[1])


def wait_for(predicate: Any, what: str, server: ServerProcess) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out waiting for {what}: {server.describe()}")
        time.sleep(POLL_INTERVAL)


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Parse ``(event, data)`` pairs from a server-sent events stream, one at a time."""
    event = "message"
    data: dict[str, Any] | None = None
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = json.loads(line.removeprefix("data: "))
        elif line == "" and data is not None:
            yield event, data
            event, data = "message", None


def test_lifespan_ran_in_each_worker_after_the_fork(
    server: ServerProcess, client: httpx.Client
) -> None:
    # post_fork's startup() ran the lifespan in every worker at boot, before any request, and
    # never in the master that imported the app (--preload).
    assert server.wait_for_log("lifespan startup", WAIT_TIMEOUT)
    wait_for(
        lambda: len(re.findall(r"lifespan startup in worker pid=\d+", server.log())) == WORKERS,
        "the lifespan startup of every worker",
        server,
    )
    started = {
        int(pid) for pid in re.findall(r"lifespan startup in worker pid=(\d+)", server.log())
    }
    assert started == worker_pids(server)
    assert server.process.pid not in started
    assert all(parent_of(pid) == server.process.pid for pid in started)

    assert "Using worker: sync" in server.log()
    info = client.get("/api/info").json()
    # The state the lifespan yielded, in the process that answered.
    assert info["started_pid"] == info["pid"]
    assert info["pid"] in started
    # --preload: the master imported the app once, before it forked the workers.
    assert info["imported_pid"] == server.process.pid
    assert datetime.fromisoformat(info["started_at"]).tzinfo is not None
    assert info["http_version"] == "1.1"


def test_the_home_page_and_the_openapi_schema(client: httpx.Client) -> None:
    home = client.get("/")
    assert home.status_code == 200
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    assert "crossgate.ASGIToWSGI" in home.text
    schema = client.get("/openapi.json").json()
    assert {"/api/info", "/api/jobs", "/api/counters/{name}/events"} <= set(schema["paths"])


def test_the_counters_are_shared_by_the_workers(client: httpx.Client) -> None:
    assert client.get("/api/counters/shared").json() == {"name": "shared", "value": 0}
    answers = [client.post("/api/counters/shared").json() for _ in range(6)]
    assert [answer["value"] for answer in answers] == [1, 2, 3, 4, 5, 6]
    assert client.get("/api/counters/shared").json()["value"] == 6


def test_a_bad_counter_name_is_a_422_with_the_reason(client: httpx.Client) -> None:
    response = client.post("/api/counters/Not%20Valid")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "name"]


def test_server_sent_events_arrive_one_by_one(server: ServerProcess, client: httpx.Client) -> None:
    # Each event after the first is a reaction to a POST the test only sends once it has read
    # the previous event. A stream held back anywhere on the way (the adapter, gunicorn) would
    # never deliver the first event, the POSTs would never be sent, and the read would time out.
    with (
        httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as other,
        client.stream("GET", "/api/counters/live/events?count=4") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert "content-length" not in response.headers
        seen: list[tuple[str, int | None]] = []
        streamed_by: set[int] = set()
        for event, data in sse_events(response.iter_lines()):
            seen.append((event, data.get("value")))
            if event != "counter":
                break
            streamed_by.add(data["pid"])
            if data["value"] < 3:
                # The stream holds one sync worker: the other one takes the POST.
                bumped = other.post("/api/counters/live").json()
                assert bumped["pid"] not in streamed_by
    assert seen == [("counter", 0), ("counter", 1), ("counter", 2), ("counter", 3), ("end", None)]
    assert server.wait_for_log("counter stream 'live' ended after 4 events: the last event")


def test_a_stream_whose_reader_left_frees_its_worker(
    server: ServerProcess, client: httpx.Client
) -> None:
    with client.stream("GET", "/api/counters/abandoned/events?count=50") as response:
        event, data = next(sse_events(response.iter_lines()))
        assert (event, data["value"]) == ("counter", 0)
    # The stream's next keep-alive line fails to reach the client: gunicorn closes the
    # response, the adapter tells the app, and the generator ends, long before its 50 events
    # or its time limit.
    assert server.wait_for_log(
        "counter stream 'abandoned' ended after 1 events: the client left", WAIT_TIMEOUT
    ), server.describe()
    # Both workers serve again: one streams while the other takes the POST the stream shows.
    with (
        httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as other,
        client.stream("GET", "/api/counters/abandoned/events?count=2") as response,
    ):
        events = sse_events(response.iter_lines())
        assert next(events)[1]["value"] == 0
        other.post("/api/counters/abandoned")
        assert next(events)[1]["value"] == 1


def test_the_background_job_completes_after_the_response(
    server: ServerProcess, client: httpx.Client
) -> None:
    accepted = client.post("/api/jobs", json={"label": "monthly report", "seconds": 0.2})
    assert accepted.status_code == 202
    job = accepted.json()
    assert job["status"] == "queued"
    assert job["finished_by"] is None

    def finished() -> bool:
        status: str = client.get(f"/api/jobs/{job['id']}").json()["status"]
        return status == "done"

    wait_for(finished, f"job {job['id']} to finish", server)
    done = client.get(f"/api/jobs/{job['id']}").json()
    # The worker that accepted the job ran it, after the response.
    assert done["finished_by"] == done["accepted_by"]
    assert done["label"] == "monthly report"
    assert server.wait_for_log(f"job {job['id']} done in worker pid={done['finished_by']}")
    # gunicorn writes its access line once the whole response went out, then calls the
    # iterable's close(), where the adapter lets the job run: so the job's line comes after.
    log = server.log()
    answered = log.index('"POST /api/jobs HTTP/1.1" 202')
    assert answered < log.index(f"job {job['id']} done in worker")


@pytest.mark.browser
def test_the_page_says_a_job_is_done_once(server: ServerProcess, client: httpx.Client) -> None:
    """The home page polls the job until it is done. Every poll is held by the test until the
    job is done: polling one request at a time, the page has sent exactly one by then (a timer
    that fires regardless piles them up, and each says "done"); released, it says "done" once.
    """
    from playwright.sync_api import Route

    from tests.demos._browser import chromium, new_page

    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    with chromium() as browser, new_page(browser) as page:
        page.route("**/api/jobs/*", hold)
        page.goto(f"{server.base_url}/")
        page.click("#job")
        deadline = time.monotonic() + WAIT_TIMEOUT
        while not held:
            if time.monotonic() >= deadline:
                pytest.fail("the page never polled its job")
            page.wait_for_timeout(50)
        job_id = held[0].request.url.rsplit("/", 1)[1]

        def finished() -> bool:
            status: str = client.get(f"/api/jobs/{job_id}").json()["status"]
            return status == "done"

        wait_for(finished, f"job {job_id} to finish", server)
        page.wait_for_timeout(50)  # let any poll the page would send reach the route
        assert len(held) == 1, [route.request.url for route in held]
        # Released: this and every later poll go through (only one more, if any, with the job
        # done).
        page.route("**/api/jobs/*", lambda route: route.continue_())
        held[0].fulfill(response=held[0].fetch())
        page.locator("#job-log", has_text="done by worker").wait_for()
        assert page.locator("#job-log").inner_text().count("done by worker") == 1


def test_a_bad_job_is_a_422_and_an_unknown_job_a_404(client: httpx.Client) -> None:
    response = client.post("/api/jobs", json={"label": "", "seconds": 99})
    assert response.status_code == 422
    assert {tuple(error["loc"]) for error in response.json()["detail"]} == {
        ("body", "label"),
        ("body", "seconds"),
    }
    missing = client.get("/api/jobs/999999")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no job 999999"}


def test_the_workers_shut_down_cleanly(server: ServerProcess, client: httpx.Client) -> None:
    # Last in the module (pytest keeps file order): stop the server, so the log covers the
    # workers' exit, where ASGIToWSGI runs the lifespan shutdown (atexit).
    assert client.get("/api/info").status_code == 200
    workers = worker_pids(server)
    assert len(workers) == WORKERS
    server.stop()
    log = server.log()
    stopped = {int(pid) for pid in re.findall(r"lifespan shutdown in worker pid=(\d+)", log)}
    assert stopped == workers, server.describe()
    for needle in UNCLEAN:
        assert needle not in log, server.describe()
    # No stray process: every worker is gone with the master.
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the master"
