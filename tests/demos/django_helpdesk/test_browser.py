"""The live ticket page in a real browser: a comment posted in one tab appears in the other.

Stage 3 (what the README's main command runs) under uvicorn; headless Debian Chromium through
Playwright (`tests/demos/_browser.py`). The browser logs in through the legacy login page (only
a logged-in user gets the live socket: Channels' `AuthMiddlewareStack` reads the session
cookie). Two tabs open the same ticket and wait until their websocket is open (the page's
status reads `live`); tab A submits the legacy comment form (a
real POST with the CSRF token the page carries, then the redirect back); tab B, never reloaded,
shows the new comment, added by the page's script from the websocket frame. A screenshot of
tab B goes into the test's tmp directory, and into `$CROSSGATE_SCREENSHOTS/django-live-ticket.png`
when that variable names a directory (the docs' image).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext

from tests.demos._browser import browser_context, chromium
from tests.demos.django_helpdesk._live import log_problems
from tests.demos.django_helpdesk.conftest import HelpdeskServer, StartHelpdesk

pytestmark = [pytest.mark.browser, pytest.mark.servers]

TICKET = 8
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCREENSHOT_NAME = "django-live-ticket.png"


def log_in(context: BrowserContext, base_url: str, username: str, password: str) -> None:
    """Log the browser context in through the legacy login form, as a user does."""
    page = context.new_page()
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("form button[type=submit], form input[type=submit]")
    assert page.locator("header", has_text=f"Log out {username}").count() == 1
    page.close()


@pytest.fixture(scope="module")
def stage3(start_helpdesk: StartHelpdesk) -> HelpdeskServer:
    return start_helpdesk(3, "uvicorn")


def test_a_comment_posted_in_one_tab_appears_live_in_the_other(
    stage3: HelpdeskServer, tmp_path: Path
) -> None:
    url = f"{stage3.base_url}/tickets/{TICKET}/"
    body = "Rebooted the router; the printer is back (posted in tab A)"
    with chromium() as browser, browser_context(browser) as context:
        log_in(context, stage3.base_url, "demo", "demo")
        tab_a, tab_b = context.new_page(), context.new_page()
        for tab in (tab_a, tab_b):
            tab.goto(url)
            # Bounded by the context's default timeout: the websocket opened and said hello.
            tab.locator("#live-status", has_text="live").wait_for()
        before = tab_b.locator("li[data-comment-id]").count()
        assert tab_b.locator("li.comment.live").count() == 0

        tab_a.fill("#id_author", "Katherine")
        tab_a.fill("#id_body", body)
        with tab_a.expect_navigation():
            tab_a.click("#comment-form button[type=submit]")
        # Tab A reloaded (POST-redirect-GET) and shows the comment from the database.
        assert tab_a.locator("li[data-comment-id]", has_text=body).count() == 1

        # Tab B was never reloaded: the comment arrived over its websocket.
        live_item = tab_b.locator("li.comment.live[data-comment-id]", has_text=body)
        live_item.wait_for()
        assert live_item.locator("strong.author").inner_text() == "Katherine"
        assert tab_b.locator("li[data-comment-id]").count() == before + 1
        assert tab_b.locator("#live-status").inner_text() == "live"

        shot = tmp_path / SCREENSHOT_NAME
        tab_b.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(PNG_SIGNATURE)
    target = os.environ.get("CROSSGATE_SCREENSHOTS")
    if target and Path(target).is_dir():
        shutil.copyfile(shot, Path(target) / SCREENSHOT_NAME)


def test_comment_text_is_shown_as_text_never_markup(stage3: HelpdeskServer) -> None:
    """A comment that looks like HTML arrives live as text: no element is created from it."""
    body = '<img src=x onerror="document.title=\'pwned\'"><b id="injected">bold</b>'
    with chromium() as browser, browser_context(browser) as context:
        log_in(context, stage3.base_url, "demo", "demo")
        tab_a, tab_b = context.new_page(), context.new_page()
        for tab in (tab_a, tab_b):
            tab.goto(f"{stage3.base_url}/tickets/{TICKET}/")
            tab.locator("#live-status", has_text="live").wait_for()
        tab_a.fill("#id_author", "Mallory")
        tab_a.fill("#id_body", body)
        with tab_a.expect_navigation():
            tab_a.click("#comment-form button[type=submit]")
        item = tab_b.locator("li.comment.live", has_text="Mallory")
        item.wait_for()
        assert item.locator("span.body").inner_text() == body
        assert tab_b.locator("#injected").count() == 0
        assert tab_b.title() != "pwned"


def test_an_anonymous_visitor_gets_the_page_without_the_live_socket(
    stage3: HelpdeskServer,
) -> None:
    """The socket is refused (403) for a visitor who is not logged in: the page says
    "offline" and its form works as before."""
    with chromium() as browser, browser_context(browser) as context:
        page = context.new_page()
        page.goto(f"{stage3.base_url}/tickets/{TICKET}/")
        page.locator("#live-status", has_text="offline").wait_for()
        page.fill("#id_author", "Visitor")
        page.fill("#id_body", "posted without logging in")
        with page.expect_navigation():
            page.click("#comment-form button[type=submit]")
        assert page.locator("li[data-comment-id]", has_text="posted without logging in").count()


def test_the_server_log_is_clean(stage3: HelpdeskServer) -> None:
    stage3.stop()
    log = stage3.log()
    assert "Application shutdown complete." in log
    assert not log_problems(log), log
