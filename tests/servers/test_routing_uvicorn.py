"""The routers behind uvicorn, as real processes, with real Flask, Django, Starlette, FastAPI.

* ``routing_mixed``: Flask mounted at ``/legacy`` and a Django WSGI project at ``/django``
  beside a Starlette app at ``/``, and a websocket endpoint beside them all.
* ``routing_strangler``: FastAPI first, Django's ``get_asgi_application()`` for its 404s.

uvicorn runs with ``--lifespan on``, so a lifespan error anywhere would stop it from starting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from websockets.sync.client import connect

from tests.servers._servers import ServerProcess, server_command

pytestmark = pytest.mark.servers

CLIENT_TIMEOUT = 10.0
MIXED = "tests.servers.routing_mixed:application"
STRANGLER = "tests.servers.routing_strangler:application"
CHANNELS = "tests.servers.routing_channels:application"


@pytest.fixture(scope="module")
def server_name() -> str:
    """These scenarios run under uvicorn only (the issue's "under uvicorn as a real process")."""
    return "uvicorn"


@pytest.fixture(scope="module")
def mixed(start_server: Callable[[str], ServerProcess]) -> ServerProcess:
    return start_server(MIXED)


@pytest.fixture(scope="module")
def strangler(start_server: Callable[[str], ServerProcess]) -> ServerProcess:
    return start_server(STRANGLER)


@pytest.fixture(scope="module")
def channels(start_server: Callable[[str], ServerProcess]) -> ServerProcess:
    return start_server(CHANNELS)


@pytest.fixture
def mixed_client(mixed: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mixed.base_url, timeout=CLIENT_TIMEOUT) as client:
        yield client


@pytest.fixture
def strangler_client(strangler: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=strangler.base_url, timeout=CLIENT_TIMEOUT) as client:
        yield client


def crossgate_problems(server: ServerProcess) -> list[str]:
    """Log lines that show trouble: crossgate warnings and errors, tracebacks, uvicorn errors."""
    return [
        line
        for line in server.log().splitlines()
        if "crossgate-log WARNING" in line
        or "crossgate-log ERROR" in line
        or "Traceback" in line
        or line.startswith("ERROR")
    ]


@pytest.fixture(scope="module")
def mixed_under_root_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The same app behind uvicorn ``--root-path /foo``: a proxy that strips ``/foo``."""
    log = tmp_path_factory.mktemp("uvicorn-root-path") / "uvicorn.log"
    command = [*server_command("uvicorn", MIXED), "--root-path", "/foo"]
    process = ServerProcess("uvicorn", MIXED, log, command=command)
    try:
        process.wait_until_ready()
        yield process
    finally:
        process.stop()


# -- Flask mounted at /legacy beside Starlette ---------------------------------------------------


def test_flask_url_for_is_right_under_the_mount(
    mixed: ServerProcess, mixed_client: httpx.Client
) -> None:
    links = mixed_client.get("/legacy/links").json()
    assert links == {
        "form": "/legacy/form",
        "external": f"{mixed.base_url}/legacy/form",
        "script_name": "/legacy",
        "path_info": "/links",
    }


def test_flask_form_post_works_under_the_mount(mixed_client: httpx.Client) -> None:
    response = mixed_client.post("/legacy/form", data={"name": "crossgate ünïcode"})
    assert (response.status_code, response.text) == (200, "hello crossgate ünïcode")


def test_bare_mount_prefix_is_flasks_to_answer(mixed_client: httpx.Client) -> None:
    # The router serves /legacy (a2wsgi #41 answered 404); Flask redirects it to its root,
    # under the mount.
    bare = mixed_client.get("/legacy")
    assert bare.status_code == 308
    assert bare.headers["location"].endswith("/legacy/")
    assert mixed_client.get("/legacy/").text == "legacy index"


def test_starlette_lifespan_ran_and_its_state_reaches_its_requests(
    mixed: ServerProcess, mixed_client: httpx.Client
) -> None:
    assert "starlette-lifespan-startup" in mixed.log()
    response = mixed_client.get("/")
    assert (response.status_code, response.text) == (
        200,
        "starlette: state from the starlette lifespan",
    )
    # /legacyx is not under /legacy: Starlette's 404, not Flask's.
    assert mixed_client.get("/legacyx").text == "Not Found"


def test_django_reverse_is_right_under_the_mount(mixed_client: httpx.Client) -> None:
    assert mixed_client.get("/django/links").json() == {
        "links": "/django/links",
        "article": "/django/articles/7",
        "script_name": "/django",
        "path_info": "/links",
    }


def test_websocket_route_beside_the_wsgi_apps(mixed: ServerProcess) -> None:
    with connect(mixed.ws_url + "/ws/echo", open_timeout=CLIENT_TIMEOUT) as socket:
        socket.send("hello")
        assert socket.recv(timeout=CLIENT_TIMEOUT) == "echo: hello"
    assert crossgate_problems(mixed) == []


# -- FastAPI first, Django's ASGI handler for the rest ------------------------------------------


def test_django_rejecting_lifespan_is_skipped_quietly(strangler: ServerProcess) -> None:
    log = strangler.log()
    assert "fastapi-lifespan-startup" in log
    assert "Application startup complete" in log
    # The router skipped Django's ASGIHandler (it raises on the lifespan scope) at DEBUG.
    assert "crossgate-log DEBUG crossgate.routing: fallback" in log
    assert "does not support lifespan" in log
    assert crossgate_problems(strangler) == []


def test_fastapi_answers_what_it_knows(strangler_client: httpx.Client) -> None:
    assert strangler_client.get("/api/hello").json() == {"from": "fastapi"}
    accepted = strangler_client.post("/form", data={"name": "fastapi"})
    assert accepted.json() == {"hello": "fastapi"}


def test_django_answers_the_rest(strangler: ServerProcess, strangler_client: httpx.Client) -> None:
    response = strangler_client.get("/")
    assert (response.status_code, response.text) == (200, "hello from django")
    # FastAPI read this whole body before answering 404: Django gets it replayed.
    posted = strangler_client.post("/form", data={"name": "django ünïcode"})
    assert (posted.status_code, posted.text) == (200, "hello django ünïcode")
    assert crossgate_problems(strangler) == []


def test_flask_under_a_mount_behind_a_server_root_path(
    mixed_under_root_path: ServerProcess,
) -> None:
    # The root_path cases of starlette #1336 / #2352 / #2599 and a2wsgi #41, for real: the
    # server's root_path and the mount prefix both end up in SCRIPT_NAME, and url_for builds
    # the URL the client must use, in front of the proxy.
    server = mixed_under_root_path
    with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as client:
        links = client.get("/legacy/links").json()
    assert links == {
        "form": "/foo/legacy/form",
        "external": f"{server.base_url}/foo/legacy/form",
        "script_name": "/foo/legacy",
        "path_info": "/links",
    }


# -- a bare Channels consumer as the websocket app (issue 17) -----------------------------------


def test_a_bare_channels_consumer_is_skipped_once_at_info(channels: ServerProcess) -> None:
    with connect(channels.ws_url + "/", open_timeout=CLIENT_TIMEOUT) as socket:
        socket.send("hello")
        assert socket.recv(timeout=CLIENT_TIMEOUT) == "HELLO"
    assert httpx.get(channels.base_url + "/", timeout=CLIENT_TIMEOUT).text == "http side"
    log = channels.log()
    assert "Application startup complete" in log
    said = [line for line in log.splitlines() if "does not support lifespan" in line]
    # Once, at INFO, with Channels' reason; no traceback, no warning.
    assert len(said) == 1, log
    assert said[0].startswith("crossgate-log INFO crossgate.routing: ['websocket']")
    assert "No handler for message type lifespan.startup" in said[0]
    assert crossgate_problems(channels) == []
