"""A crossgate middleware stack on every tested server, in both directions.

ASGI servers (uvicorn, hypercorn, daphne, granian --interface asgi) serve `GZip` and
`BodyLimit` around WSGIToASGI; WSGI servers (gunicorn, granian --interface wsgi, waitress)
serve `WSGIGZip` and `WSGIBodyLimit` around ASGIToWSGI (``middleware_apps.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.servers._servers import (
    GUNICORN_LISTENING,
    WSGI_LISTENING,
    ServerProcess,
    granian_command,
    gunicorn_command,
    waitress_command,
)
from tests.servers.middleware_apps import MAX_BODY_SIZE

pytestmark = pytest.mark.servers

CLIENT_TIMEOUT = 30.0
WSGI_SIDE = "tests.servers.middleware_apps:wsgi_side"
WSGI_SERVERS = ("gunicorn", "granian", "waitress")


@pytest.fixture(scope="module")
def asgi_server(start_server: Callable[[str], ServerProcess]) -> ServerProcess:
    process: ServerProcess = start_server("tests.servers.middleware_apps:asgi_side")
    return process


@pytest.fixture(scope="module", params=WSGI_SERVERS)
def wsgi_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    name: str = request.param
    if name == "gunicorn":
        command, listening = gunicorn_command(WSGI_SIDE), GUNICORN_LISTENING
    elif name == "granian":
        command, listening = granian_command(WSGI_SIDE, "wsgi"), WSGI_LISTENING
    else:
        command, listening = waitress_command(WSGI_SIDE), WSGI_LISTENING
    log = tmp_path_factory.mktemp(f"middleware-{name}") / f"{name}.log"
    process = ServerProcess(name, WSGI_SIDE, log, command=command, listening=listening)
    try:
        process.wait_until_ready()
        yield process
    finally:
        process.stop()


def _gzipped_hello(server: ServerProcess, framework: str) -> None:
    response = httpx.get(
        server.base_url + "/", headers={"accept-encoding": "gzip"}, timeout=CLIENT_TIMEOUT
    )

    assert response.status_code == 200, server.describe()
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == f"hello from {framework}"  # httpx decodes it


def _body_over_the_limit_is_413(server: ServerProcess, path: str) -> None:
    response = httpx.post(
        server.base_url + path, content=b"x" * (MAX_BODY_SIZE + 1), timeout=CLIENT_TIMEOUT
    )

    assert response.status_code == 413, server.describe()
    small = httpx.post(server.base_url + path, content=b"{}", timeout=CLIENT_TIMEOUT)
    assert small.status_code != 413, server.describe()


def test_asgi_server_gzip_around_wsgi_to_asgi(asgi_server: ServerProcess) -> None:
    _gzipped_hello(asgi_server, "flask")


def test_asgi_server_body_limit_around_wsgi_to_asgi(asgi_server: ServerProcess) -> None:
    _body_over_the_limit_is_413(asgi_server, "/form")


def test_wsgi_server_gzip_around_asgi_to_wsgi(wsgi_server: ServerProcess) -> None:
    _gzipped_hello(wsgi_server, "fastapi")


def test_wsgi_server_body_limit_around_asgi_to_wsgi(wsgi_server: ServerProcess) -> None:
    _body_over_the_limit_is_413(wsgi_server, "/echo")
