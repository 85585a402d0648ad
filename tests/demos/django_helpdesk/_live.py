"""Helpers for the live-update tests: websockets on a ticket, comments through the legacy form
and the API, and a clean-log check for a stopped server.

Every wait is bounded: a frame that never comes fails the test with what was expected.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.demos.django_helpdesk.conftest import HelpdeskServer

__all__ = [
    "FRAME_TIMEOUT",
    "LOG_PROBLEMS",
    "LOOP_PROBE_APP",
    "UVICORN_DENIAL_NOISE",
    "Live",
    "assert_comment_event",
    "csrf_token",
    "log_on_failure",
    "log_problems",
    "login",
    "loop_probe_lines",
    "next_event",
    "open_live",
    "post_api_comment",
    "post_form_comment",
    "run_against",
    "ws_headers",
]

FRAME_TIMEOUT = 10.0

# The stage (2 or 3, from `HELPDESK_STAGE`) with the channel layer's `group_send` logging which
# loop it runs on.
LOOP_PROBE_APP = "tests.demos.django_helpdesk.loop_probe_app:application"

_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

# What a clean server log never contains: errors, tracebacks, and asyncio's complaints about
# tasks or futures nobody waited for (a leak in the consumer or the channel layer).
LOG_PROBLEMS = (
    "ERROR",
    "Traceback",
    "Task was destroyed but it is pending",
    "exception was never retrieved",
    "never awaited",
    "Unclosed",
)


# uvicorn 0.54's websockets-sansio protocol logs this ERROR after every websocket refused with
# the ASGI "Denial Response" extension (the 404 the endpoint sends for an unknown ticket), though
# the client got the response: it never marks that handshake complete. Known and fixed upstream
# (Kludex/uvicorn pull request #3138); wsproto's protocol does not log it.
UVICORN_DENIAL_NOISE = "ERROR:    ASGI callable returned without completing handshake."


def log_problems(log: str) -> list[str]:
    """The lines of ``log`` that show a problem (see `LOG_PROBLEMS`)."""
    return [
        line
        for line in log.splitlines()
        if any(word in line for word in LOG_PROBLEMS) and line.strip() != UVICORN_DENIAL_NOISE
    ]


@contextmanager
def log_on_failure(server: HelpdeskServer) -> Iterator[None]:
    """Add the server's log to a failed assertion or an expired wait inside the block: what
    went wrong is usually visible server-side."""
    try:
        yield
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(f"{exc!r}\n{server.describe()}") from exc


def run_against(server: HelpdeskServer, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run the scenario ``main`` on a fresh event loop; a failure shows the server's log."""
    with log_on_failure(server):
        asyncio.run(main())


class Live:
    """One websocket following a ticket, and the ``hello`` frame the server sent first."""

    def __init__(self, socket: ClientConnection, hello: dict[str, Any]) -> None:
        self.socket = socket
        self.hello = hello

    @property
    def pid(self) -> int:
        """The server process holding this websocket."""
        pid: int = self.hello["pid"]
        return pid


async def next_event(live: Live, timeout: float = FRAME_TIMEOUT) -> dict[str, Any]:
    """The next JSON frame on ``live``; fails after ``timeout`` seconds."""
    text = await asyncio.wait_for(live.socket.recv(), timeout)
    event: dict[str, Any] = json.loads(text)
    return event


async def login(client: httpx.AsyncClient, username: str = "demo", password: str = "demo") -> str:
    """Log ``client`` in through the legacy, untouched login view (CSRF token included), as a
    browser does; returns the session cookie's value (the client keeps it too)."""
    page = await client.get("/accounts/login/")
    assert page.status_code == 200, page.text
    answer = await client.post(
        "/accounts/login/",
        data={
            "csrfmiddlewaretoken": csrf_token(page.text),
            "username": username,
            "password": password,
        },
    )
    assert answer.status_code == 302, answer.text
    session = client.cookies.get("sessionid")
    assert session, "the login view set no session cookie"
    return session


def ws_headers(server: HelpdeskServer, session: str | None) -> dict[str, str]:
    """What a browser sends on the handshake: the page's ``Origin`` and the session cookie."""
    headers = {"Origin": server.base_url}
    if session is not None:
        headers["Cookie"] = f"sessionid={session}"
    return headers


@asynccontextmanager
async def open_live(
    server: HelpdeskServer, ticket: int, count: int = 1, *, session: str | None = None
) -> AsyncIterator[list[Live]]:
    """Open ``count`` websockets on ``ticket`` as the user of ``session`` (default: ``demo``,
    logged in for the purpose); each is in the ticket's group once its hello arrived."""
    if session is None:
        async with server.async_client() as client:
            session = await login(client)
    async with AsyncExitStack() as stack:
        opened: list[Live] = []
        for _ in range(count):
            socket = await stack.enter_async_context(
                connect(
                    f"{server.ws_url}/ws/tickets/{ticket}/",
                    open_timeout=FRAME_TIMEOUT,
                    additional_headers=ws_headers(server, session),
                )
            )
            hello = json.loads(await asyncio.wait_for(socket.recv(), FRAME_TIMEOUT))
            assert hello["type"] == "hello", hello
            assert hello["ticket"] == ticket, hello
            assert isinstance(hello["user"], str), hello
            opened.append(Live(socket, hello))
        yield opened


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on the page."""
    found = _CSRF.search(html)
    assert found is not None, "the page has no CSRF-protected form"
    return found.group(1)


async def post_form_comment(
    client: httpx.AsyncClient, ticket: int, author: str, body: str
) -> httpx.Response:
    """Comment through the legacy HTML form, as a browser does: GET the page (CSRF cookie and
    token), then POST the form. Returns the POST's answer (a redirect back to the page)."""
    page = await client.get(f"/tickets/{ticket}/")
    assert page.status_code == 200, page.text
    return await client.post(
        f"/tickets/{ticket}/",
        data={"csrfmiddlewaretoken": csrf_token(page.text), "author": author, "body": body},
    )


async def post_api_comment(
    client: httpx.AsyncClient, ticket: int, author: str, body: str
) -> httpx.Response:
    """Comment through the stage 3 JSON API."""
    return await client.post(
        f"/api/tickets/{ticket}/comments/", json={"author": author, "body": body}
    )


def loop_probe_lines(server: HelpdeskServer) -> list[dict[str, str]]:
    """The `loop_probe_app` lines of the server's log so far, as dicts of their fields."""
    return [
        dict(field.split("=", 1) for field in line.split()[1:])
        for line in server.log().splitlines()
        if line.startswith("loop-probe ")
    ]


def assert_comment_event(event: dict[str, Any], ticket: int, author: str, body: str) -> int:
    """``event`` is the contract's ``comment.created`` for this comment; returns its id."""
    assert event["type"] == "comment.created", event
    assert event["ticket"] == ticket
    comment = event["comment"]
    assert (comment["author"], comment["body"]) == (author, body)
    assert isinstance(comment["id"], int)
    assert isinstance(comment["created"], str)
    assert comment["created"]
    comment_id: int = comment["id"]
    return comment_id
