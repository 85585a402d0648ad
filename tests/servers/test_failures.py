"""Failures under real servers (issue 14, items 3, 4 and 7): the app's exception reaches
uvicorn and gunicorn, which log it and keep serving; a ``str`` chunk is a clean 500; a long
poll of empty chunks is closed when its client leaves. Servers run as child processes on
127.0.0.1 and are stopped by PID; no test asserts a duration.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers._servers import (
    GUNICORN_LISTENING,
    ServerProcess,
    gunicorn_command,
    running,
    server_command,
)
from tests.servers.failing_apps import POLL_WAITS

pytestmark = pytest.mark.servers

CLIENT_TIMEOUT = 30.0
EVENT_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def uvicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("uvicorn-failures") / "uvicorn.log"
    app = "tests.servers.failing_apps:wsgi_application"
    with running(ServerProcess("uvicorn", app, log, command=server_command("uvicorn", app))) as p:
        yield p


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log: Path = tmp_path_factory.mktemp("gunicorn-failures") / "gunicorn.log"
    app = "tests.servers.failing_apps:asgi_application"
    # One sync worker: the request after the failure is served by the very worker that failed.
    command = gunicorn_command(app, worker_class="sync", workers=1)
    process = ServerProcess("gunicorn", app, log, command=command, listening=GUNICORN_LISTENING)
    with running(process) as p:
        yield p


def _token() -> str:
    return uuid.uuid4().hex


def _still_serves(server: ServerProcess, body: str) -> None:
    assert server.process.poll() is None, server.describe()
    response = httpx.get(server.base_url + "/", timeout=CLIENT_TIMEOUT)
    assert response.status_code == 200, server.describe()
    assert response.text == body


def test_uvicorn_gets_the_wsgi_apps_exception_after_the_500(uvicorn: ServerProcess) -> None:
    token = _token()
    with httpx.Client(base_url=uvicorn.base_url, timeout=CLIENT_TIMEOUT) as client:
        for _ in range(10):
            response = client.get("/raise", params={"token": token})
            assert response.status_code == 500
            assert response.text == "500 Internal Server Error\n"
            # uvicorn closes the connection of a request whose app raised; the 500 said
            # "Connection: close", so the keep-alive client does not reuse it (no reset).
            assert response.headers["connection"] == "close"
            assert client.get("/").text == "hello from wsgi"

    assert uvicorn.wait_for_log(f"RuntimeError: wsgi-boom token={token}", EVENT_TIMEOUT), (
        uvicorn.describe()
    )
    log = uvicorn.log()
    assert "Exception in ASGI application" in log
    _still_serves(uvicorn, "hello from wsgi")


def test_uvicorn_answers_a_str_chunk_with_a_clean_500(uvicorn: ServerProcess) -> None:
    response = httpx.get(uvicorn.base_url + "/str", timeout=CLIENT_TIMEOUT)

    # Not a "200" and a TypeError from h11: the adapter checked the chunk.
    assert response.status_code == 500
    assert response.text == "500 Internal Server Error\n"
    assert uvicorn.wait_for_log("of type str, not bytes", EVENT_TIMEOUT), uvicorn.describe()
    assert "AppProtocolError" in uvicorn.log()
    assert "TypeError" not in uvicorn.log()
    _still_serves(uvicorn, "hello from wsgi")


def test_uvicorn_closes_a_long_poll_when_its_client_leaves(uvicorn: ServerProcess) -> None:
    token = _token()
    # The poll never sends a byte, so the client gives up waiting for the headers: httpx
    # closes its connection on the read timeout, and uvicorn tells the app http.disconnect.
    timeout = httpx.Timeout(CLIENT_TIMEOUT, read=1.0)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(uvicorn.base_url + "/poll", params={"token": token}, timeout=timeout)

    assert uvicorn.wait_for_log(f"poll-started token={token}", EVENT_TIMEOUT), uvicorn.describe()
    assert uvicorn.wait_for_log(f"poll-closed token={token}", EVENT_TIMEOUT), uvicorn.describe()
    found = re.search(rf"poll-closed token={token} waits=(\d+) gone=(\w+)", uvicorn.log())
    assert found is not None
    # Closed after uvicorn's http.disconnect, not because the poll ran out of waits.
    assert found.group(2) == "True"
    assert int(found.group(1)) < POLL_WAITS
    _still_serves(uvicorn, "hello from wsgi")


def test_gunicorn_gets_the_asgi_apps_exception(gunicorn: ServerProcess) -> None:
    token = _token()
    response = httpx.get(gunicorn.base_url + "/raise", params={"token": token}, timeout=30.0)

    # gunicorn's own 500, and its log line with the app's traceback.
    assert response.status_code == 500
    assert "Internal Server Error" in response.text
    assert gunicorn.wait_for_log(f"RuntimeError: asgi-boom token={token}", EVENT_TIMEOUT), (
        gunicorn.describe()
    )
    assert "Error handling request" in gunicorn.log()
    # One worker: the one that failed serves the next request.
    pids = set(re.findall(r"Booting worker with pid: (\d+)", gunicorn.log()))
    _still_serves(gunicorn, "hello from asgi")
    assert set(re.findall(r"Booting worker with pid: (\d+)", gunicorn.log())) == pids
