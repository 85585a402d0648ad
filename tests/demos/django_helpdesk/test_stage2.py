"""Stage 2 under a real uvicorn: the legacy application plus live updates over websockets.

A comment posted through the legacy, untouched HTML form (a sync view in a `WSGIToASGI` worker
thread) reaches every websocket open on its ticket, through `crossgate.async_to_sync` onto the
server's loop, and no other ticket's; the legacy pages still work; the server shuts down clean.
"""

from __future__ import annotations

import re
import signal

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.demos.django_helpdesk._live import (
    FRAME_TIMEOUT,
    LOOP_PROBE_APP,
    assert_comment_event,
    log_problems,
    loop_probe_lines,
    next_event,
    open_live,
    post_form_comment,
    run_against,
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
            # (Each POST answers only after the hub has queued the event, so a frame for
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


@pytest.mark.parametrize(
    "path",
    ["/ws/tickets/999999/", "/ws/nowhere/", "/ws/tickets/abc/", "/tickets/3/"],
)
def test_websockets_to_unknown_tickets_or_paths_are_refused(
    stage2: HelpdeskServer, path: str
) -> None:
    async def main() -> None:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{stage2.ws_url}{path}", open_timeout=FRAME_TIMEOUT):
                pass  # pragma: no cover - the handshake is refused
        # uvicorn offers the denial-response extension: a real 404, not a bare 403.
        assert refused.value.response.status_code == 404

    run_against(stage2, main)


def test_the_legacy_view_publishes_on_the_servers_own_loop(start_helpdesk: StartHelpdesk) -> None:
    """The comment is saved in a `WSGIToASGI` worker thread; `async_to_sync` in the receiver
    runs `Hub.publish` on the server's event loop (where the hub started at lifespan startup),
    not on a loop of its own that would have to hop over (`loop_probe_app` logs which)."""
    server = start_helpdesk(2, "uvicorn", app=LOOP_PROBE_APP)

    async def main() -> None:
        async with open_live(server, TICKET) as (page,), server.async_client() as client:
            response = await post_form_comment(client, TICKET, "Ken", "on the server's loop")
            assert response.status_code == 302, response.text
            assert_comment_event(await next_event(page), TICKET, "Ken", "on the server's loop")

    run_against(server, main)
    assert loop_probe_lines(server) == [
        {"ticket": str(TICKET), "on_hub_loop": "True", "thread": "MainThread"}
    ], server.describe()


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
