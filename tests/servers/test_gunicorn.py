"""ASGIToWSGI behind gunicorn: a FastAPI app and Django's own ``get_asgi_application()``, served
by ``sync`` workers (inline mode) and ``gthread`` workers (shared mode) as real processes.

Streaming is proven with a rendezvous across processes (the app waits for a file the test
creates once it holds the first event), never with a timer; what happens inside the server is
read from its log. Each server is stopped by PID at the end, and its log, worker exits included,
must not hold a "Task was destroyed but it is pending" or a traceback.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.servers import fastapi_app
from tests.servers._servers import GUNICORN_LISTENING, ServerProcess, gunicorn_command

pytestmark = pytest.mark.servers

APPS = {
    "fastapi": "tests.servers.fastapi_app:application",
    "django": "tests.servers.django_asgi.wsgi:application",
}
# (worker processes, threads each): gthread runs threads, so ASGIToWSGI's auto mode picks
# shared mode there; sync workers get inline mode.
WORKERS = {"sync": (2, 1), "gthread": (1, 4)}

UPLOAD_SIZE = 50 * 1024 * 1024
UPLOAD_BLOCK = 1024 * 1024
CLIENT_TIMEOUT = 30.0
EVENT_TIMEOUT = 10.0

# What a clean log never holds: a task asyncio destroyed while pending (a2wsgi leaves one per
# early-closed response), a traceback, or a request gunicorn had to abort.
_UNCLEAN = ("Task was destroyed but it is pending", "Traceback", "Error handling request")


def _start(
    tmp_path_factory: pytest.TempPathFactory,
    app: str,
    name: str,
    *,
    worker_class: str = "sync",
    workers: int = 1,
    threads: int = 1,
    preload: bool = False,
    config: str | None = None,
) -> ServerProcess:
    log_dir = tmp_path_factory.mktemp(f"gunicorn-{name}")
    command = gunicorn_command(
        APPS[app],
        worker_class=worker_class,
        workers=workers,
        threads=threads,
        preload=preload,
        config=config,
    )
    return ServerProcess(
        "gunicorn",
        APPS[app],
        log_dir / "gunicorn.log",
        command=command,
        listening=GUNICORN_LISTENING,
    )


@pytest.fixture(
    scope="module",
    params=[(app, worker) for app in APPS for worker in WORKERS],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    app, worker = request.param
    workers, threads = WORKERS[worker]
    with ExitStack() as stack:
        process = _start(
            tmp_path_factory,
            app,
            f"{app}-{worker}",
            worker_class=worker,
            workers=workers,
            threads=threads,
        )
        stack.callback(process.stop)
        process.wait_until_ready()
        yield process


@pytest.fixture
def framework(server: ServerProcess) -> str:
    return next(name for name, target in APPS.items() if target == server.app)


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as client:
        yield client


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """A path the app waits for; the test creates the file to release it."""
    return tmp_path / f"gate-{uuid.uuid4().hex}"


def test_json_endpoint(client: httpx.Client, framework: str) -> None:
    payload = {"name": "crossgate ünïcode", "numbers": [1, 2, 3]}

    response = client.post("/echo", json=payload)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["framework"] == framework
    assert body["echo"] == payload


def test_get_through_the_adapter(client: httpx.Client, framework: str) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.text == f"hello from {framework}"


def test_file_response_arrives_whole(client: httpx.Client) -> None:
    # FastAPI's FileResponse goes out as http.response.pathsend, through gunicorn's
    # wsgi.file_wrapper and sendfile(); Django streams its FileResponse in chunks.
    response = client.get("/file")

    assert response.status_code == 200
    assert response.content == Path(fastapi_app.__file__).read_bytes()


def test_chunked_upload_arrives_whole(client: httpx.Client) -> None:
    # httpx sends a generator body with Transfer-Encoding: chunked; gunicorn passes it on with
    # no CONTENT_LENGTH and wsgi.input_terminated, which the adapter reads to the end (a2wsgi
    # reads 0 bytes of such a body).
    digest = hashlib.sha256()

    def blocks() -> Iterator[bytes]:
        for number in range(UPLOAD_SIZE // UPLOAD_BLOCK):
            block = hashlib.sha256(number.to_bytes(4, "big")).digest() * (UPLOAD_BLOCK // 32)
            digest.update(block)
            yield block

    response = client.post("/upload", content=blocks())

    assert response.status_code == 200, response.text
    assert response.json() == {"length": UPLOAD_SIZE, "sha256": digest.hexdigest()}


def test_sse_events_arrive_while_the_app_still_produces(client: httpx.Client, gate: Path) -> None:
    token = uuid.uuid4().hex
    params = {"token": token, "gate": str(gate), "count": "4"}
    with client.stream("GET", "/sse", params=params) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        # The app holds back everything after the first event until the gate file exists: the
        # event can only be here if it left the server while the app was still running.
        assert next(lines) == "data: tick 0"
        gate.touch()
        rest = [line for line in lines if line]

    assert rest == ["data: tick 1", "data: tick 2", "data: tick 3"]


def test_client_leaving_mid_stream_ends_the_app(
    server: ServerProcess, client: httpx.Client
) -> None:
    token = uuid.uuid4().hex
    with client.stream("GET", "/sse", params={"token": token}) as response:
        lines = response.iter_lines()
        assert next(lines) == "data: tick 0"
        assert next(lines) == ""
        assert next(lines) == "data: tick 1"
    # The connection closed mid-stream: gunicorn's next write fails, it calls close() on the
    # iterable, the app's send() raises and its generator's finally logs this.
    assert server.wait_for_log(f"sse-closed token={token}", EVENT_TIMEOUT), server.describe()


# Django has neither lifespan (test_log_is_clean checks it is served without) nor background
# tasks of its own: those tests run against the FastAPI servers only.
FASTAPI_ONLY = pytest.mark.parametrize(
    "server",
    [("fastapi", worker) for worker in WORKERS],
    indirect=True,
    ids=lambda p: f"{p[0]}-{p[1]}",
)


@FASTAPI_ONLY
def test_lifespan_state_is_visible_to_requests(client: httpx.Client) -> None:
    answers = [client.get("/state").json() for _ in range(4)]

    for answer in answers:
        # Startup ran in the worker serving the request (not in the master, not in a sibling).
        assert answer["started_pid"] == answer["pid"]
        assert re.fullmatch(r"[0-9a-f]{32}", answer["token"])


@FASTAPI_ONLY
def test_background_task_finishes_after_the_response(
    server: ServerProcess, client: httpx.Client, gate: Path
) -> None:
    token = uuid.uuid4().hex

    # The task waits for the gate, which is created only once the response is here: an
    # adapter that ran it before completing the response would deliver the response only
    # after the task gave up, and the log would say "gave-up".
    response = client.post("/background", params={"token": token, "gate": str(gate)})
    assert response.json() == {"queued": token}
    gate.touch()

    assert server.wait_for_log(f"background-done token={token}", EVENT_TIMEOUT), server.describe()
    assert f"background-gave-up token={token}" not in server.log()


def test_log_is_clean_through_worker_exit(server: ServerProcess, framework: str) -> None:
    # Runs last for each server (pytest keeps a module-scoped fixture's tests together, in
    # file order): stop it, so the log covers the workers' exit (atexit) too.
    server.stop()
    log = server.log()

    for needle in _UNCLEAN:
        assert needle not in log, server.describe()
    worker_pids = set(re.findall(r"Booting worker with pid: (\d+)", log))
    if framework == "fastapi":
        # Lifespan ran once per worker process, and shut down when each worker exited.
        started = set(re.findall(r"fastapi-startup pid=(\d+)", log))
        stopped = set(re.findall(r"fastapi-shutdown pid=(\d+)", log))
        assert started == stopped == worker_pids, server.describe()
    else:
        # Django's ASGIHandler raises on the lifespan scope: no warning, no error about it.
        assert "lifespan" not in log.lower(), server.describe()


@pytest.fixture(scope="module")
def preloaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ExitStack() as stack:
        process = _start(
            tmp_path_factory,
            "fastapi",
            "preload",
            workers=2,
            preload=True,
            config="python:tests.servers.gunicorn_preload",
        )
        stack.callback(process.stop)
        process.wait_until_ready()
        yield process


def test_preload_with_startup_in_post_fork(preloaded: ServerProcess) -> None:
    # --preload imports the app (and builds the adapter) in the master, then forks: the loops
    # must be made in each worker, and post_fork's startup() runs lifespan there, before the
    # first request.
    with httpx.Client(base_url=preloaded.base_url, timeout=CLIENT_TIMEOUT) as client:
        answers = [client.get("/state").json() for _ in range(6)]
        assert client.post("/echo", json={"a": 1}).json()["echo"] == {"a": 1}
    preloaded.stop()
    log = preloaded.log()

    master = re.search(r"Listening at: \S+ \((\d+)\)", log)
    assert master is not None
    worker_pids = set(re.findall(r"Booting worker with pid: (\d+)", log))
    started = re.findall(r"fastapi-startup pid=(\d+)", log)
    assert sorted(started) == sorted(worker_pids), preloaded.describe()
    assert master.group(1) not in started
    for answer in answers:
        assert answer["started_pid"] == answer["pid"]
        assert str(answer["pid"]) in worker_pids
    for needle in _UNCLEAN:
        assert needle not in log, preloaded.describe()
