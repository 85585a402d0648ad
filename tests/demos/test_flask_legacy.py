"""The legacy Flask demo, driven in-process through ``WSGIToASGI`` (``make demo-flask-legacy``).

The Flask app is wrapped in ``wsgiref.validate.validator`` so that any PEP 3333 slip, by the app
or by crossgate, fails the test (validator warnings are errors under this suite's config).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from wsgiref.validate import validator

import httpx
import pytest

from crossgate import WSGIToASGI
from crossgate.testing import call_http, http_scope
from demo_projects.flask_legacy import asgi
from demo_projects.flask_legacy.app import REPORT_NAME, create_app, report_bytes

Run = Callable[[Callable[[httpx.AsyncClient], Awaitable[None]]], None]


@pytest.fixture
def application(tmp_path: Path) -> Iterator[WSGIToASGI]:
    adapter = WSGIToASGI(validator(create_app(tmp_path)))
    yield adapter
    adapter.close()


@pytest.fixture
def run(application: WSGIToASGI) -> Run:
    """Run ``scenario`` with an httpx client whose requests go straight to ``application``."""

    def runner(scenario: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
        async def main() -> None:
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://demo.test"
            ) as client:
                await scenario(client)

        asyncio.run(main())

    return runner


def test_the_demo_entry_point_wraps_the_flask_app() -> None:
    assert isinstance(asgi.application, WSGIToASGI)


def test_index_links_to_every_page(run: Run) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.get("/")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert "crossgate.WSGIToASGI" in response.text
        assert "crossgate-wsgi" in response.text  # the worker thread's name
        # The command that serves this demo (`make demo` serves the Django one).
        assert "<code>make demo-flask-legacy</code>" in response.text
        for page in ("/guestbook", "/download", "/countdown", "/environ/caf%C3%A9"):
            assert f'href="{page}"' in response.text

    run(scenario)


def test_guestbook_post_redirects_then_shows_the_entry(run: Run) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/guestbook", data={"name": "Ada <3", "message": "Served from a thread pool."}
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/guestbook"

        page = await client.get("/guestbook")
        assert page.status_code == 200
        assert "Thank you for signing, Ada &lt;3!" in page.text  # flashed, and escaped
        assert "<strong>Ada &lt;3</strong> wrote: Served from a thread pool." in page.text

        again = await client.get("/guestbook")
        assert "Thank you for signing" not in again.text  # a flash shows once
        assert "Served from a thread pool." in again.text

    run(scenario)


def test_guestbook_rejects_an_empty_message(run: Run) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post("/guestbook", data={"name": "Bob", "message": "  "})
        assert response.status_code == 303
        page = await client.get("/guestbook")
        assert "Please fill in both" in page.text
        assert "Nobody has signed yet." in page.text

    run(scenario)


def test_download_sends_the_report(run: Run) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.get("/download")
        assert response.status_code == 200
        assert response.headers["content-disposition"] == f"attachment; filename={REPORT_NAME}"
        assert response.headers["content-type"].startswith("text/csv")
        expected = report_bytes()
        assert len(expected) > 256 * 1024  # several file_wrapper blocks
        assert response.headers["content-length"] == str(len(expected))
        assert response.content == expected

    run(scenario)


def test_countdown_streams_every_line(run: Run) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.get("/countdown", params={"from": "3", "delay": "0"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert "content-length" not in response.headers
        assert response.text.splitlines() == [
            "Counting down from 3 for 127.0.0.1",
            "3",
            "2",
            "1",
            "Liftoff!",
        ]

    run(scenario)


def test_countdown_stops_as_soon_as_the_client_leaves(application: WSGIToASGI) -> None:
    # Five seconds between lines: only the crossgate.disconnected event can end the wait
    # early. An app that missed it would still be waiting when call_http's bound, shorter than
    # one line's delay, fails the test with a TimeoutError (a bound, not a measured time).
    scope = http_scope("GET", "/countdown", query_string=b"from=30&delay=5")
    result = asyncio.run(call_http(application, scope, disconnect_after=0.3, timeout=4.5))
    assert result.disconnected
    assert result.status == 200
    assert result.body.startswith(b"Counting down from 30")


def test_environ_page_shows_the_latin1_path(run: Run) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.get("/environ/caf%C3%A9")
        assert response.status_code == 200
        assert "<code>/environ/café</code>" in response.text  # what Flask decoded
        assert "&#39;/environ/cafÃ©&#39;" in response.text  # PATH_INFO: one code point a byte
        assert "&#39;80&#39;" in response.text  # SERVER_PORT is a str

    run(scenario)


def test_download_is_handed_to_a_server_offering_pathsend(tmp_path: Path) -> None:
    # Without the validator: it wraps the response iterable, which hides the file wrapper
    # from crossgate, so the file is always read in Python there.
    adapter = WSGIToASGI(create_app(tmp_path))
    scope = http_scope("GET", "/download", extensions={"http.response.pathsend": {}})
    try:
        result = asyncio.run(call_http(adapter, scope))
    finally:
        adapter.close()
    assert result.error is None
    assert result.status == 200
    assert [m["type"] for m in result.messages] == [
        "http.response.start",
        "http.response.pathsend",
    ]
    assert result.messages[1]["path"] == str(tmp_path / REPORT_NAME)
    assert result.header("content-length") == str(len(report_bytes()))
