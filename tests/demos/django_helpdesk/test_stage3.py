"""Stage 3 under a real uvicorn (`--lifespan on`): new async routes first, the legacy app behind.

`/api/...` is answered by Django's own `ASGIHandler` (the new async views), every other path by
the legacy application that `crossgate.routing.Fallback` hands the request to after the
handler's 404, request body included; websockets still go to the live-updates endpoint, and a
comment posted through the API is pushed like one from the legacy form. Django's handler raises
for the lifespan scope; crossgate's routers answer lifespan themselves, so uvicorn, which
`--lifespan on` makes strict, starts and stops cleanly.
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from websockets.exceptions import ConnectionClosed

from tests.demos.django_helpdesk._live import (
    assert_comment_event,
    log_problems,
    next_event,
    open_live,
    post_api_comment,
    post_form_comment,
    run_against,
)
from tests.demos.django_helpdesk.conftest import HelpdeskServer, StartHelpdesk

pytestmark = pytest.mark.servers

TICKET, OTHER_TICKET = 6, 7


@pytest.fixture(scope="module")
def stage3(start_helpdesk: StartHelpdesk) -> HelpdeskServer:
    return start_helpdesk(3, "uvicorn")


def test_the_api_is_served_by_djangos_asgi_handler(stage3: HelpdeskServer) -> None:
    async def main() -> None:
        async with stage3.async_client() as client:
            listing = await client.get("/api/tickets/", params={"status": "open"})
            assert listing.status_code == 200
            assert listing.headers["content-type"] == "application/json"
            tickets = listing.json()["tickets"]
            assert tickets
            assert {ticket["status"] for ticket in tickets} == {"open"}
            detail = await client.get(f"/api/tickets/{TICKET}/")
            assert detail.json()["id"] == TICKET
            # The API's own errors are its answers too: a 400 is not a fall-through status.
            bad = await client.get("/api/tickets/", params={"status": "lost"})
            assert bad.status_code == 400
            assert "status must be one of" in bad.json()["error"]
            # An API 404 (no such ticket) falls through to the legacy app, which has no such
            # path either: the answer is the legacy 404, HTML.
            missing = await client.get("/api/tickets/999999/")
            assert missing.status_code == 404
            assert missing.headers["content-type"].startswith("text/html")

    run_against(stage3, main)


def test_the_legacy_pages_are_served_by_the_fallback(stage3: HelpdeskServer) -> None:
    async def main() -> None:
        async with stage3.async_client() as client:
            landing = await client.get("/")
            assert landing.status_code == 200
            assert "Stage 3" in landing.text
            listing = await client.get("/tickets/")
            assert listing.status_code == 200
            assert listing.headers["content-type"].startswith("text/html")
            assert f'href="/tickets/{TICKET}/"' in listing.text
            login_page = await client.get("/accounts/login/")
            assert login_page.status_code == 200
            assert 'name="csrfmiddlewaretoken"' in login_page.text
            attachment = await client.get("/tickets/1/attachment/")
            assert attachment.status_code == 200
            assert attachment.content

    run_against(stage3, main)


def test_the_legacy_form_still_posts_through_the_fallback_and_is_pushed(
    stage3: HelpdeskServer,
) -> None:
    """The form's POST body is read by Django's handler first (it 404s), then replayed to the
    legacy view: the comment is saved once and pushed once."""

    async def main() -> None:
        async with open_live(stage3, TICKET) as (page,), stage3.async_client() as client:
            response = await post_form_comment(client, TICKET, "Edsger", "via the fallback")
            assert response.status_code == 302, response.text
            comment_id = assert_comment_event(
                await next_event(page), TICKET, "Edsger", "via the fallback"
            )
            detail = (await client.get(f"/api/tickets/{TICKET}/")).json()
            assert [c["id"] for c in detail["comments"]].count(comment_id) == 1

    run_against(stage3, main)


def test_a_comment_posted_through_the_api_is_pushed(stage3: HelpdeskServer) -> None:
    async def main() -> None:
        async with (
            open_live(stage3, TICKET, count=2) as pages,
            open_live(stage3, OTHER_TICKET) as (other,),
            stage3.async_client() as client,
        ):
            created = await post_api_comment(client, TICKET, "Alan", "from the async API")
            assert created.status_code == 201, created.text
            comment = created.json()
            for page in pages:
                event = await next_event(page)
                assert (
                    assert_comment_event(event, TICKET, "Alan", "from the async API")
                    == (comment["id"])
                )
                assert event["comment"]["created"] == comment["created"]
            # Nothing for the other ticket: its next frame is its own.
            await post_api_comment(client, OTHER_TICKET, "Alan", "for ticket 7")
            assert_comment_event(await next_event(other), OTHER_TICKET, "Alan", "for ticket 7")
            # A refused comment is not pushed: the page's next frame is the one after it.
            refused = await post_api_comment(client, TICKET, "", "no author")
            assert refused.status_code == 400
            await post_api_comment(client, TICKET, "Alan", "after the refused one")
            for page in pages:
                assert (await next_event(page))["comment"]["body"] == "after the refused one"

    run_against(stage3, main)


def test_lifespan_starts_and_stops_cleanly_although_django_refuses_it(
    stage3: HelpdeskServer,
) -> None:
    """Last in the module: stop the server while a page is still following a ticket, then read
    the whole log. The page's websocket is closed by the server (uvicorn's 1012 "service
    restart", or the hub's 1001 "going away"), and nothing is left pending."""
    log_before = stage3.log()
    # uvicorn --lifespan on: a failed startup would have stopped the server before it listened.
    assert "Application startup complete." in log_before
    assert "ASGI 'lifespan' protocol appears unsupported" not in log_before

    async def main() -> None:
        async with open_live(stage3, TICKET) as (page,):
            await asyncio.to_thread(stage3.stop)
            with pytest.raises(ConnectionClosed) as closed:
                await next_event(page)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code in (1001, 1012)

    run_against(stage3, main)
    log = stage3.log()
    assert stage3.process.returncode in (0, -signal.SIGTERM), log
    assert "Application shutdown complete." in log
    assert not log_problems(log), log
