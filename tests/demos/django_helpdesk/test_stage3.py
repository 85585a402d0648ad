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
from html.parser import HTMLParser
from typing import ClassVar
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import ConnectionClosed

from tests.demos.django_helpdesk._live import (
    LOOP_PROBE_APP,
    assert_comment_event,
    csrf_token,
    log_problems,
    loop_probe_lines,
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


class _Landing(HTMLParser):
    """The links of the landing page (`href` and `src`), and the items of its list of stages."""

    _LINKS: ClassVar[dict[str, str]] = {"a": "href", "link": "href", "img": "src", "script": "src"}

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.stages: list[str] = []
        self._in_stages = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = self._LINKS.get(tag)
        self.links += [value for name, value in attrs if name == wanted and value is not None]
        if tag == "ol" and ("id", "stages") in attrs:
            self._in_stages = True
        elif tag == "li" and self._in_stages:
            self.stages.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "ol":
            self._in_stages = False

    def handle_data(self, data: str) -> None:
        if self._in_stages and self.stages:
            self.stages[-1] += data


def test_the_landing_page_explains_the_stages_and_every_link_works(
    stage3: HelpdeskServer,
) -> None:
    """What the README's main command shows first: the four stages, and links to try each
    feature, every one of which answers under stage 3 (a login page first for the export and
    the admin, which then answer once logged in)."""

    async def main() -> None:
        async with stage3.async_client() as client:
            landing = await client.get("/")
            assert landing.status_code == 200
            page = _Landing()
            page.feed(landing.text)
            page.close()
            assert [text.split(",")[0].strip() for text in page.stages] == [
                f"Stage {stage}" for stage in range(4)
            ]
            paths = {urlsplit(link).path for link in page.links}
            # The features the page offers to try, at their real addresses.
            assert {
                "/tickets/",
                "/tickets/1/",
                "/tickets/export.csv",
                "/tickets/1/attachment/",
                "/tickets/2/attachment/",
                "/slow/",
                "/api/tickets/",
                "/admin/",
            } <= paths
            links = sorted(set(page.links))
            assert not [link for link in links if urlsplit(link).netloc], "links leave the demo"
            # At once: `/slow/?seconds=3` need not hold up the others.
            answers = await asyncio.gather(*(client.get(link) for link in links))
            needs_login = {}
            for link, answer in zip(links, answers, strict=True):
                if answer.status_code == 302:
                    login = urlsplit(answer.headers["location"]).path
                    assert login in ("/accounts/login/", "/admin/login/"), (link, login)
                    needs_login[link] = login
                    answer = await client.get(answer.headers["location"])
                assert answer.status_code == 200, (link, answer.status_code, answer.text[:500])
            assert needs_login == {
                "/tickets/export.csv": "/accounts/login/",
                "/admin/": "/admin/login/",
            }
            # Logged in (as the page says: admin / admin), those answer too.
            login_page = await client.get("/admin/login/")
            logged_in = await client.post(
                "/admin/login/",
                data={
                    "username": "admin",
                    "password": "admin",
                    "csrfmiddlewaretoken": csrf_token(login_page.text),
                },
            )
            assert logged_in.status_code == 302, logged_in.text
            for link in needs_login:
                answer = await client.get(link)
                assert answer.status_code == 200, (link, answer.status_code)

    run_against(stage3, main)


def test_api_and_form_comments_are_published_on_the_servers_own_loop(
    start_helpdesk: StartHelpdesk,
) -> None:
    """Django's async ORM saves the API's comment in a thread of its own (asgiref's), the
    legacy form's in a `WSGIToASGI` worker thread; from both, crossgate's `async_to_sync` in
    the receiver runs `group_send` on the server's event loop (`loop_probe_app` logs which)."""
    server = start_helpdesk(3, "uvicorn", app=LOOP_PROBE_APP)

    async def main() -> None:
        async with open_live(server, TICKET) as (page,), server.async_client() as client:
            created = await post_api_comment(client, TICKET, "Ken", "API, server loop")
            assert created.status_code == 201, created.text
            assert_comment_event(await next_event(page), TICKET, "Ken", "API, server loop")
            posted = await post_form_comment(client, TICKET, "Ken", "form, server loop")
            assert posted.status_code == 302, posted.text
            assert_comment_event(await next_event(page), TICKET, "Ken", "form, server loop")

    run_against(server, main)
    on_server_loop = {
        "group": f"ticket-{TICKET}",
        "on_server_loop": "True",
        "thread": "MainThread",
    }
    assert loop_probe_lines(server) == [on_server_loop, on_server_loop], server.describe()


def test_lifespan_starts_and_stops_cleanly_although_django_refuses_it(
    stage3: HelpdeskServer,
) -> None:
    """Last in the module: stop the server while a page is still following a ticket, then read
    the whole log. The page's websocket is closed by the server (uvicorn's 1012 "service
    restart", or 1001 "going away"), and nothing is left pending."""
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
