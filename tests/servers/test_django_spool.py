"""Django behind uvicorn and hypercorn through `WSGIToASGI` in spool mode: chunked uploads.

Django's ``WSGIRequest`` reads exactly ``CONTENT_LENGTH`` bytes and ignores
``wsgi.input_terminated``, so in stream mode a chunked upload is empty to Django (the stream-mode
tests in ``test_uvicorn_hypercorn.py`` skip that case). Spool mode knows the body's size once it
is spooled and sets ``CONTENT_LENGTH``, so Django gets the whole body (issue 14 item 8).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.servers._servers import ServerProcess

pytestmark = pytest.mark.servers

APP = "tests.servers.django_app.asgi_crossgate_spool:application"

# Several times the 1 MiB spool threshold, so the body goes through the temporary file.
UPLOAD_SIZE = 8 * 1024 * 1024
UPLOAD_BLOCK = 256 * 1024
CLIENT_TIMEOUT = 30.0

FRAMINGS = ["chunked", "content-length"]


class _ClientGaveUp(Exception):
    """Raised by an upload body to make httpx drop the connection mid-request."""


@pytest.fixture(scope="module")
def server(start_server: Callable[[str], ServerProcess]) -> ServerProcess:
    process: ServerProcess = start_server(APP)
    return process


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as client:
        yield client


def _blocks(update: Callable[[bytes], object], *, give_up: bool = False) -> Iterator[bytes]:
    count = UPLOAD_SIZE // UPLOAD_BLOCK
    for number in range(count):
        if give_up and number == count // 2:
            raise _ClientGaveUp
        # Distinct blocks, so a dropped, repeated or reordered block changes the digest.
        block = hashlib.sha256(number.to_bytes(4, "big")).digest() * (UPLOAD_BLOCK // 32)
        update(block)
        yield block


def _framing_headers(framing: str) -> dict[str, str]:
    # httpx sends a generator body with Transfer-Encoding: chunked unless a length is declared.
    return {"content-length": str(UPLOAD_SIZE)} if framing == "content-length" else {}


@pytest.mark.parametrize("framing", FRAMINGS)
def test_django_gets_the_whole_upload(
    server: ServerProcess, client: httpx.Client, framing: str
) -> None:
    token = uuid.uuid4().hex
    digest = hashlib.sha256()
    response = client.post(
        "/upload",
        params={"token": token},
        content=_blocks(digest.update),
        headers=_framing_headers(framing),
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"length": UPLOAD_SIZE, "sha256": digest.hexdigest()}
    assert server.wait_for_log(f"upload-complete token={token} length={UPLOAD_SIZE}")


@pytest.mark.parametrize("framing", FRAMINGS)
def test_client_leaving_mid_upload_never_reaches_django(
    server: ServerProcess, client: httpx.Client, framing: str
) -> None:
    token = uuid.uuid4().hex
    with pytest.raises(_ClientGaveUp):
        client.post(
            "/upload",
            params={"token": token},
            content=_blocks(hashlib.sha256().update, give_up=True),
            headers=_framing_headers(framing),
        )
    # A complete upload after it, on another connection: once Django logged that one, the
    # server has long seen the first client leave.
    after = uuid.uuid4().hex
    digest = hashlib.sha256()
    with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as other:
        response = other.post(
            "/upload",
            params={"token": after},
            content=_blocks(digest.update),
            headers=_framing_headers(framing),
        )
    assert response.json() == {"length": UPLOAD_SIZE, "sha256": digest.hexdigest()}
    assert server.wait_for_log(f"upload-complete token={after}")

    # The app never ran for the abandoned upload: it neither failed nor took a truncated body.
    log = server.log()
    assert f"upload-aborted token={token}" not in log, server.describe()
    assert f"upload-complete token={token}" not in log, server.describe()
