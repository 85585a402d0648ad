"""Stage 2 under a real uvicorn: the legacy application plus Channels for websockets.

A comment posted through the legacy, untouched HTML form (a sync view in a `WSGIToASGI` worker
thread) reaches every websocket open on its ticket, through
`async_to_sync(channel_layer.group_send)` (crossgate's onto the server's loop, or asgiref's), and
no other ticket's; only a logged-in user opens the socket, and a logout closes it; the legacy
pages still work; the server shuts down clean.
"""

from __future__ import annotations

import json
import re
import signal

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.demos.django_helpdesk._live import (
    FRAME_TIMEOUT,
    LOOP_PROBE_APP,
    assert_comment_event,
    csrf_token,
    log_problems,
    login,
    loop_probe_lines,
    next_event,
    open_live,
    post_form_comment,
    run_against,
    ws_headers,
)
from tests.demos.django_helpdesk.conftest import HelpdeskServer, StartHelpdesk

pytestmark = pytest.mark.servers

# Tickets of the seed data this module comments on (each test module takes its own, so the
# session's shared database never mixes them up).
TICKET, OTHER_TICKET = 3, 4


@pytest.fixture(scope="module")
def stage2(start_helpdesk: StartHelpdesk) -> HelpdeskServer:
    return start_helpdesk(2, "uvicorn")


def test_a_comment_from_the_legacy_form_reaches_every_page_of_its_ticket(
    stage2: HelpdeskServer,
) -> None:
    async def main() -> None:
        async with (
            open_live(stage2, TICKET, count=2) as pages,
            open_live(stage2, OTHER_TICKET) as (other,),
            stage2.async_client() as client,
        ):
            response = await post_form_comment(client, TICKET, "Ada", "Pushed <live> & escaped")
            # POST-redirect-GET, as the legacy view always did.
            assert response.status_code == 302, response.text
            assert response.headers["location"] == f"/tickets/{TICKET}/"
            ids = {
                assert_comment_event(
                    await next_event(page), TICKET, "Ada", "Pushed <live> & escaped"
                )
                for page in pages
            }
            assert len(ids) == 1
            # The comment is saved: the page shows it on load too, escaped as the legacy
            # template always did.
            page = await client.get(f"/tickets/{TICKET}/")
            assert f'data-comment-id="{ids.pop()}"' in page.text
            assert "Pushed &lt;live&gt; &amp; escaped" in page.text

            # The other ticket's page got nothing: its next frame is its own ticket's comment.
            # (Each POST answers only after the layer has taken the event, so a frame for
            # TICKET would have come first.)
            await post_form_comment(client, OTHER_TICKET, "Grace", "Only for ticket 4")
            assert_comment_event(
                await next_event(other), OTHER_TICKET, "Grace", "Only for ticket 4"
            )

    run_against(stage2, main)


def test_every_comment_arrives_once_and_in_order(stage2: HelpdeskServer) -> None:
    async def main() -> None:
        async with open_live(stage2, TICKET) as (page,), stage2.async_client() as client:
            for n in range(3):
                await post_form_comment(client, TICKET, "Linus", f"comment {n}")
            bodies = [(await next_event(page))["comment"]["body"] for _ in range(3)]
            assert bodies == ["comment 0", "comment 1", "comment 2"]

    run_against(stage2, main)


def test_a_post_without_the_csrf_token_is_refused_and_not_pushed(stage2: HelpdeskServer) -> None:
    async def main() -> None:
        async with open_live(stage2, TICKET) as (page,), stage2.async_client() as client:
            refused = await client.post(f"/tickets/{TICKET}/", data={"author": "x", "body": "y"})
            assert refused.status_code == 403
            await post_form_comment(client, TICKET, "Barbara", "after the refused one")
            event = await next_event(page)
            assert event["comment"]["body"] == "after the refused one"

    run_against(stage2, main)


def test_the_legacy_pages_still_work(stage2: HelpdeskServer) -> None:
    async def main() -> None:
        async with stage2.async_client() as client:
            landing = await client.get("/")
            assert landing.status_code == 200
            assert "Stage 2" in landing.text
            listing = await client.get("/tickets/")
            assert listing.status_code == 200
            assert f'href="/tickets/{TICKET}/"' in listing.text
            detail = await client.get(f"/tickets/{TICKET}/")
            assert detail.status_code == 200
            assert 'id="live-status"' in detail.text
            slow = await client.get("/slow/", params={"seconds": "0"})
            assert slow.json()["slept"] == 0.0
            # Stage 2 has no API yet: the legacy URLconf answers 404 (stage 3 serves it).
            assert (await client.get("/api/tickets/")).status_code == 404
            attachment = await client.get("/tickets/1/attachment/")
            assert attachment.status_code == 200
            assert attachment.content

    run_against(stage2, main)


@pytest.mark.parametrize("ticket", ["999999", "9" * 30])
def test_an_unknown_ticket_is_refused_with_a_404(stage2: HelpdeskServer, ticket: str) -> None:
    async def main() -> None:
        async with stage2.async_client() as client:
            session = await login(client)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"{stage2.ws_url}/ws/tickets/{ticket}/",
                open_timeout=FRAME_TIMEOUT,
                additional_headers=ws_headers(stage2, session),
            ):
                pass  # pragma: no cover - the handshake is refused
        # uvicorn offers the denial-response extension: a real 404 with the reason.
        assert refused.value.response.status_code == 404
        assert refused.value.response.body == f"there is no ticket {ticket}".encode()

    run_against(stage2, main)


def test_an_anonymous_socket_is_refused_with_the_reason(stage2: HelpdeskServer) -> None:
    async def main() -> None:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"{stage2.ws_url}/ws/tickets/{TICKET}/",
                open_timeout=FRAME_TIMEOUT,
                additional_headers=ws_headers(stage2, None),
            ):
                pass  # pragma: no cover - the handshake is refused
        assert refused.value.response.status_code == 403
        assert refused.value.response.body == b"log in to follow a ticket live"

    run_against(stage2, main)


def test_a_foreign_origin_is_refused(stage2: HelpdeskServer) -> None:
    """AllowedHostsOriginValidator: a page of another site cannot use the user's cookie."""

    async def main() -> None:
        async with stage2.async_client() as client:
            session = await login(client)
        headers = {**ws_headers(stage2, session), "Origin": "http://evil.example"}
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"{stage2.ws_url}/ws/tickets/{TICKET}/",
                open_timeout=FRAME_TIMEOUT,
                additional_headers=headers,
            ):
                pass  # pragma: no cover - the handshake is refused
        assert refused.value.response.status_code == 403

    run_against(stage2, main)


def test_comments_sent_over_the_socket_carry_the_sessions_user(stage2: HelpdeskServer) -> None:
    """The author is the logged-in user of the socket, whatever the frame says."""

    async def main() -> None:
        async with stage2.async_client() as admin_client:
            admin = await login(admin_client, "admin", "admin")
        async with (
            open_live(stage2, TICKET) as (demo_page,),
            open_live(stage2, TICKET, session=admin) as (admin_page,),
        ):
            assert (demo_page.hello["user"], admin_page.hello["user"]) == ("demo", "admin")
            await admin_page.socket.send(
                json.dumps({"type": "comment", "body": "from the socket", "author": "mallory"})
            )
            for page in (demo_page, admin_page):
                assert_comment_event(await next_event(page), TICKET, "admin", "from the socket")
            # Not JSON, binary, or a comment without a body: ignored or answered, never fatal.
            await admin_page.socket.send("not json")
            await admin_page.socket.send(b"\x00")
            await admin_page.socket.send(json.dumps({"type": "comment", "body": " "}))
            assert (await next_event(admin_page))["type"] == "error"

    run_against(stage2, main)


def test_logging_out_closes_the_users_sockets_at_the_next_message(
    stage2: HelpdeskServer,
) -> None:
    async def main() -> None:
        async with stage2.async_client() as client:
            session = await login(client)
            async with (
                open_live(stage2, TICKET, session=session) as (page,),
                open_live(stage2, TICKET) as (other_session_page,),
            ):
                page_html = await client.get(f"/tickets/{TICKET}/")
                logout = await client.post(
                    "/accounts/logout/", data={"csrfmiddlewaretoken": csrf_token(page_html.text)}
                )
                assert logout.status_code == 302, logout.text
                # The next message of the group: the logged-out socket is closed instead of
                # getting it; a socket of another session of the same user still gets it.
                await post_form_comment(client, TICKET, "Ken", "after the logout")
                with pytest.raises(ConnectionClosed) as closed:
                    await next_event(page)
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "logged out")
                assert_comment_event(
                    await next_event(other_session_page), TICKET, "Ken", "after the logout"
                )
            # A new socket with the old cookie is refused at the handshake.
            with pytest.raises(InvalidStatus) as refused:
                async with connect(
                    f"{stage2.ws_url}/ws/tickets/{TICKET}/",
                    open_timeout=FRAME_TIMEOUT,
                    additional_headers=ws_headers(stage2, session),
                ):
                    pass  # pragma: no cover - the handshake is refused
            assert refused.value.response.status_code == 403

    run_against(stage2, main)


@pytest.mark.parametrize(
    ("bridge", "expected"),
    [
        # crossgate's: from the WSGIToASGI worker thread onto the server's own loop.
        ("crossgate", {"on_server_loop": "True", "thread": "MainThread"}),
        # asgiref's: a new loop, in a thread of its own, for each call.
        ("asgiref", {"on_server_loop": "False"}),
    ],
)
def test_the_legacy_view_sends_with_either_async_to_sync(
    start_helpdesk: StartHelpdesk, bridge: str, expected: dict[str, str]
) -> None:
    """The comment is saved in a `WSGIToASGI` worker thread; `async_to_sync(group_send)` in the
    receiver reaches the consumers with crossgate's and with asgiref's; crossgate's runs it on
    the server's event loop (`loop_probe_app` logs which)."""
    server = start_helpdesk(
        2, "uvicorn", app=LOOP_PROBE_APP, env={"HELPDESK_ASYNC_TO_SYNC": bridge}
    )

    async def main() -> None:
        async with open_live(server, TICKET) as (page,), server.async_client() as client:
            response = await post_form_comment(client, TICKET, "Ken", f"through {bridge}")
            assert response.status_code == 302, response.text
            assert_comment_event(await next_event(page), TICKET, "Ken", f"through {bridge}")

    run_against(server, main)
    (line,) = loop_probe_lines(server)
    assert line["group"] == f"ticket-{TICKET}"
    assert expected.items() <= line.items(), line
    if bridge == "asgiref":
        assert line["thread"] != "MainThread", line


def test_the_server_stops_cleanly(stage2: HelpdeskServer) -> None:
    """Last in the module: stop the server (websockets were opened and closed, comments
    pushed) and read its whole log: lifespan ran both ways, nothing went wrong."""
    stage2.stop()
    log = stage2.log()
    # uvicorn exits by re-raising the SIGTERM it handled, once shut down.
    assert stage2.process.returncode in (0, -signal.SIGTERM), log
    assert "Application startup complete." in log
    assert "Application shutdown complete." in log
    assert not log_problems(log), log
    assert re.search(r'"WebSocket /ws/tickets/3/" \[accepted\]', log), log
