"""ASGIToWSGI behind granian (``--interface wsgi``) and waitress: the gunicorn scenarios again.

The FastAPI app and Django's own ``get_asgi_application()`` run through ASGIToWSGI on each
server; the scenarios are the functions of ``test_gunicorn.py`` (JSON, a file response, a
chunked upload, server-sent events while the app still produces, a client leaving mid-stream),
collected here with this module's ``server`` fixture.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.servers import test_gunicorn as scenarios
from tests.servers._servers import WSGI_LISTENING, ServerProcess, granian_command, waitress_command

pytestmark = pytest.mark.servers

APPS = scenarios.APPS
SERVERS = ("granian", "waitress")
CLIENT_TIMEOUT = 30.0

# The scenarios, and the fixtures they ask for besides ``server``.
framework = scenarios.framework
client = scenarios.client
gate = scenarios.gate
test_json_endpoint = scenarios.test_json_endpoint
test_get_through_the_adapter = scenarios.test_get_through_the_adapter
test_file_response_arrives_whole = scenarios.test_file_response_arrives_whole
test_chunked_upload_arrives_whole = scenarios.test_chunked_upload_arrives_whole
test_sse_events_arrive_while_the_app_still_produces = (
    scenarios.test_sse_events_arrive_while_the_app_still_produces
)
test_client_leaving_mid_stream_ends_the_app = scenarios.test_client_leaving_mid_stream_ends_the_app


@pytest.fixture(
    scope="module",
    params=[(app, name) for app in APPS for name in SERVERS],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    app, name = request.param
    target = APPS[app]
    command = granian_command(target, "wsgi") if name == "granian" else waitress_command(target)
    log = tmp_path_factory.mktemp(f"{name}-{app}") / f"{name}.log"
    process = ServerProcess(name, target, log, command=command, listening=WSGI_LISTENING)
    try:
        process.wait_until_ready()
        yield process
    finally:
        process.stop()


def test_lifespan_ran_before_the_first_request(server: ServerProcess, framework: str) -> None:
    if framework != "fastapi":
        pytest.skip("Django's ASGIHandler has no lifespan")
    answers = [
        httpx.get(server.base_url + "/state", timeout=CLIENT_TIMEOUT).json() for _ in range(3)
    ]

    for answer in answers:
        assert answer["started_pid"] == answer["pid"]
        assert re.fullmatch(r"[0-9a-f]{32}", answer["token"])


def test_log_is_clean_through_shutdown(server: ServerProcess) -> None:
    # Runs last for each server (module-scoped fixture, file order): stop it, so the log
    # covers the shutdown too.
    server.stop()
    log = server.log()

    for needle in scenarios._UNCLEAN:
        assert needle not in log, server.describe()
