"""WSGIToASGI behind real servers: uvicorn, hypercorn, daphne and granian (``--interface asgi``),
each serving a Flask and a Django app.

Every scenario runs over a real socket against a server in a child process (``conftest.py``).
No test asserts a duration: concurrency, streaming and ``close()`` are proven with server-side
rendezvous and log lines (see ``_rendezvous.py``), so the tests hold on slow and fast machines
alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.servers._rendezvous import BARRIER_PARTIES
from tests.servers._servers import ServerProcess

pytestmark = pytest.mark.servers

APPS = {
    "flask": "tests.servers.flask_asgi:application",
    "django": "tests.servers.django_app.asgi_crossgate:application",
}

# The client checks the app's progress after half of this: 25 MiB is far more than loopback
# socket buffers and the adapter's read-ahead (1 MiB) can hold, so the body streams for real.
UPLOAD_SIZE = 50 * 1024 * 1024
UPLOAD_BLOCK = 1024 * 1024

# Bounds on waiting for something to happen server-side; generous, and never asserted on.
EVENT_TIMEOUT = 10.0
CLIENT_TIMEOUT = 30.0


@pytest.fixture(scope="module", params=sorted(APPS))
def server(
    request: pytest.FixtureRequest, start_server: Callable[[str], ServerProcess]
) -> ServerProcess:
    process: ServerProcess = start_server(APPS[request.param])
    return process


@pytest.fixture
def framework(server: ServerProcess) -> str:
    """The framework of the app the current server serves: "flask" or "django"."""
    return next(name for name, app in APPS.items() if app == server.app)


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as client:
        yield client


@pytest.fixture(autouse=True)
def _server_keeps_serving(server: ServerProcess) -> Iterator[None]:
    """After every scenario, the server is still up and still answers: nothing took it down."""
    yield
    assert server.process.poll() is None, server.describe()
    response = httpx.get(server.base_url + "/", timeout=CLIENT_TIMEOUT)
    assert response.status_code == 200, server.describe()


def _token() -> str:
    return uuid.uuid4().hex


def _line_with(log: str, needle: str) -> str:
    """The first log line containing ``needle`` ("" when there is none)."""
    return next((line for line in log.splitlines() if needle in line), "")


def test_get(client: httpx.Client, framework: str) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.text == f"hello from {framework}"


def test_head_has_the_get_headers_and_no_body(
    server: ServerProcess, client: httpx.Client, framework: str
) -> None:
    get = client.get("/")
    head = client.head("/")

    assert head.status_code == get.status_code == 200
    assert head.content == b""
    # RFC 9110 section 9.3.2: HEAD answers with the headers a GET would get, framing included
    # (Flask declares a Content-Length; Django, without CommonMiddleware, declares none).
    names = ["content-length", "content-type", "transfer-encoding"]
    if framework == "django":
        # With no Content-Length from the app, the server chooses the framing: uvicorn and
        # daphne (Twisted) send a GET chunked and a HEAD without Transfer-Encoding; granian
        # sends Content-Length when the whole body comes in one message. Whether the adapter
        # had the whole body before the headers went out (and so could declare its length)
        # depends on timing. Section 9.3.2 allows leaving out headers known only while
        # generating the content; the adapter passes the same headers to both.
        names = ["content-type"]
    for name in names:
        assert head.headers.get(name) == get.headers.get(name), name


def test_keep_alive_connection_serves_many_requests(server: ServerProcess) -> None:
    # One connection, reused: asgiref's adapter answered about half of such requests with 500
    # under uvicorn (asgiref #491); every request here must get its own, right answer.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT, limits=limits) as client:
        answers = [
            client.post("/form", data={"name": str(number)}).text
            if number % 2
            else client.get("/").status_code
            for number in range(40)
        ]

    assert answers == [f"hello {n}" if n % 2 else 200 for n in range(40)]


def test_form_post(client: httpx.Client) -> None:
    response = client.post("/form", data={"name": "crossgate ünïcode"})

    assert response.status_code == 200
    assert response.text == "hello crossgate ünïcode"


class _ClientGaveUp(Exception):
    """Raised by an upload body to make httpx drop the connection mid-request."""


class _Upload:
    """A 50 MiB request body, generated block by block, that checks the server reads it early.

    Halfway through, the generator stops sending and polls ``/progress`` from a second
    connection until the app has read some of the body. An adapter that buffers or spools the
    whole body before starting the app never gets there (the app has read nothing while the
    client waits), so ``app_read_early`` stays False; no timing is involved. With ``give_up``,
    the body then raises instead of going on: the app is mid-read when the client leaves.
    """

    def __init__(self, progress: httpx.Client, token: str, *, give_up: bool = False) -> None:
        self._progress = progress
        self._token = token
        self._give_up = give_up
        self.sha256 = hashlib.sha256()
        self.app_read_early = False

    def _app_has_read(self) -> bool:
        deadline = time.monotonic() + EVENT_TIMEOUT
        while time.monotonic() < deadline:
            response = self._progress.get("/progress", params={"token": self._token})
            if response.json()["read"] > 0:
                return True
            time.sleep(0.05)
        return False

    def blocks(self) -> Iterator[bytes]:
        count = UPLOAD_SIZE // UPLOAD_BLOCK
        for number in range(count):
            if number == count // 2:
                self.app_read_early = self._app_has_read()
                if self._give_up:
                    raise _ClientGaveUp
            # Distinct blocks, so a dropped, repeated or reordered block changes the digest.
            block = hashlib.sha256(number.to_bytes(4, "big")).digest() * (UPLOAD_BLOCK // 32)
            self.sha256.update(block)
            yield block


def _skip_django_chunked(framework: str, framing: str) -> None:
    if framework == "django" and framing == "chunked":
        # Stream mode truly cannot: it hands the body over while it arrives, before its size is
        # known. Spool mode sets CONTENT_LENGTH; test_django_spool.py runs these cases there.
        pytest.skip(
            "stream mode cannot give Django a chunked body: Django's WSGIRequest reads "
            "CONTENT_LENGTH bytes and ignores wsgi.input_terminated (spool mode can: "
            "tests/servers/test_django_spool.py)"
        )


def _skip_buffering_server(server: ServerProcess) -> None:
    if server.server == "daphne":
        pytest.skip(
            "daphne (Twisted's HTTP request) reads the whole request body before it starts the "
            "app, so no app can read an upload while it arrives there"
        )


def _framing_headers(framing: str) -> dict[str, str]:
    # httpx sends a generator body with Transfer-Encoding: chunked, unless the request
    # declares a Content-Length.
    return {"content-length": str(UPLOAD_SIZE)} if framing == "content-length" else {}


FRAMINGS = ["chunked", "content-length"]


@pytest.mark.parametrize("framing", FRAMINGS)
def test_large_upload_streams_to_the_app(
    server: ServerProcess, client: httpx.Client, framework: str, framing: str
) -> None:
    _skip_django_chunked(framework, framing)
    _skip_buffering_server(server)
    token = _token()
    with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as progress:
        upload = _Upload(progress, token)
        response = client.post(
            "/upload",
            params={"token": token},
            content=upload.blocks(),
            headers=_framing_headers(framing),
        )

    assert response.status_code == 200, response.text
    assert response.json() == {"length": UPLOAD_SIZE, "sha256": upload.sha256.hexdigest()}
    assert upload.app_read_early, "the app read nothing before the client sent half the body"


@pytest.mark.parametrize("framing", FRAMINGS)
def test_client_leaving_mid_upload_is_an_error_in_the_app(
    server: ServerProcess, client: httpx.Client, framework: str, framing: str
) -> None:
    _skip_django_chunked(framework, framing)
    _skip_buffering_server(server)
    token = _token()
    with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as progress:
        upload = _Upload(progress, token, give_up=True)
        with pytest.raises(_ClientGaveUp):
            client.post(
                "/upload",
                params={"token": token},
                content=upload.blocks(),
                headers=_framing_headers(framing),
            )
    assert upload.app_read_early, "the app read nothing before the client sent half the body"

    # The app was blocked in read() when the connection dropped: read() must raise (crossgate's
    # ClientDisconnected, an OSError, which Django turns into UnreadablePostError), never
    # return b"" as if the body had ended there.
    error = "ClientDisconnected" if framework == "flask" else "UnreadablePostError"
    assert server.wait_for_log(f"upload-aborted token={token}", timeout=5.0), server.describe()
    log = server.log()
    assert f"error={error}" in _line_with(log, f"upload-aborted token={token}")
    assert f"upload-complete token={token}" not in log


def test_streamed_response_arrives_while_the_app_still_produces(client: httpx.Client) -> None:
    # The app sends a head, then waits for a release that this client only sends once the head
    # has arrived. If the response were held back until the app finished, the head would come
    # only after the app gave up waiting, and the body would end with "gate-timeout".
    token = _token()
    chunks = 5
    with client.stream("GET", "/stream", params={"token": token, "chunks": chunks}) as response:
        assert response.status_code == 200
        pieces = response.iter_bytes()
        received = b""
        for piece in pieces:
            received += piece
            if len(received) >= len(b"head\n"):
                break
        assert received == b"head\n", "the head came only once the app had finished"
        released = client.post("/release", params={"token": token})
        assert released.status_code == 200
        received += b"".join(pieces)

    expected = b"head\n" + b"".join(f"chunk {n}\n".encode() for n in range(1, chunks))
    assert received == expected


def test_client_leaving_an_endless_stream_closes_the_iterable(
    server: ServerProcess, client: httpx.Client
) -> None:
    token = _token()
    with client.stream("GET", "/sse", params={"token": token}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = response.iter_lines()
        assert next(events, None) == "data: tick 0"
        assert next(events, None) == ""
        assert next(events, None) == "data: tick 1"
    # Leaving the block closed the connection mid-stream. The server must notice, stop the
    # generator and call close() on it (PEP 3333), which logs this line from its finally.
    assert server.wait_for_log(f"sse-closed token={token}", timeout=5.0), server.describe()


def test_requests_run_in_parallel_worker_threads(server: ServerProcess) -> None:
    # Each /barrier request waits for BARRIER_PARTIES - 1 others inside the app: all answer 200
    # only if that many requests run the app at once. Serialised, the barrier times out and
    # every request answers 500.
    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=BARRIER_PARTIES, max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=CLIENT_TIMEOUT, limits=limits
        ) as client:
            return await asyncio.gather(*(client.get("/barrier") for _ in range(BARRIER_PARTIES)))

    responses = asyncio.run(burst())

    assert [r.status_code for r in responses] == [200] * BARRIER_PARTIES, server.describe()
    assert {r.text for r in responses} == {"barrier passed"}


# The line each server logs once it serves (granian binds in its main process, then starts
# the worker that runs the lifespan and the app).
_SERVING = {"uvicorn": "running on", "hypercorn": "running on", "granian": "started worker-1"}


def test_lifespan_startup_hook_ran(server: ServerProcess, framework: str) -> None:
    # The servers run the ASGI lifespan protocol before serving; the adapter answers it and
    # runs on_startup, whose line must be in the log before the server reported serving.
    if server.server == "daphne":
        pytest.skip("daphne does not implement the ASGI lifespan protocol: no on_startup there")
    log = server.log()
    startup = log.find(f"crossgate-startup-ran app={framework}")
    assert startup >= 0, server.describe()
    assert startup < log.lower().find(_SERVING[server.server]), server.describe()


def test_websocket_is_refused_with_403(server: ServerProcess) -> None:
    # A WSGI app cannot hold a websocket open, so the adapter refuses the handshake: through
    # the websocket.http.response extension (both servers offer it), or a close before accept,
    # which the ASGI spec maps to 403.
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(server.ws_url + "/ws", open_timeout=EVENT_TIMEOUT),
    ):
        pass

    assert refused.value.response.status_code == 403


# PEP 3333 ("Unicode Issues"): PATH_INFO carries the percent-decoded request bytes, one code
# point per byte (latin-1), whether or not they are UTF-8. Flask shows the environ as is. Django
# overwrites META["PATH_INFO"] with its own reading of those bytes: UTF-8 decoded, with
# invalid bytes percent-encoded again (django.utils.encoding.repercent_broken_unicode), so it
# shows "%FF" where the adapter gave "\xff", and would show U+FFFD had the adapter given the
# mojibake that re-encoding a decoded ``path`` produces.
PATHS = [
    pytest.param("/where/%FF", "/where/\xff", "/where/%FF", id="invalid-utf8"),
    pytest.param("/where/caf%C3%A9", "/where/caf\xc3\xa9", "/where/café", id="utf8"),
    pytest.param("/where/a%2Fb", "/where/a/b", "/where/a/b", id="encoded-slash"),
    pytest.param("/where/a%20b", "/where/a b", "/where/a b", id="space"),
]


@pytest.mark.parametrize(("target", "flask_path", "django_path"), PATHS)
def test_path_info_carries_the_request_bytes(
    client: httpx.Client, framework: str, target: str, flask_path: str, django_path: str
) -> None:
    url = client.base_url.join(target)
    # httpx must send the target byte for byte, or the test would check httpx, not the server.
    assert url.raw_path == target.encode("ascii")

    response = client.get(url)

    assert response.status_code == 200
    seen: dict[str, str] = json.loads(response.text)
    expected = flask_path if framework == "flask" else django_path
    assert seen == {"path_info": expected, "script_name": ""}
