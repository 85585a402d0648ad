"""The Flask mount demo in a real browser: headless Chromium clicks from Starlette into Flask.

The browser follows the links the pages really render, loads the stylesheet and the logo the
way a visitor's browser does, submits the preferences form and follows its redirect, so a URL
that only looks right in the HTML (but resolves outside the mount, or loses the session
cookie) fails here. A screenshot of the legacy app goes into the test's tmp directory, and into
``$CROSSGATE_SCREENSHOTS/flask-mount.png`` when that variable names a directory (the docs'
image).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from demo_projects.flask_mount.app import LEGACY_PREFIX
from tests.demos import _browser
from tests.demos._browser import chromium, new_page
from tests.servers._servers import ServerProcess, running

pytestmark = [pytest.mark.browser, pytest.mark.servers]

APP = "demo_projects.flask_mount.app:application"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The colours style.css gives: only a stylesheet that loaded can have set them.
HEADER_BACKGROUND = "rgb(0, 105, 92)"
DARK_BACKGROUND = "rgb(32, 33, 36)"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("flask-mount-browser") / "uvicorn.log"
    process = ServerProcess("uvicorn", APP, log)
    with running(process):
        yield process


@pytest.fixture
def page() -> Iterator[Page]:
    with chromium() as browser, new_page(browser) as page:
        yield page


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def assert_legacy_page(page: Page, heading: str) -> None:
    """The page is a rendered legacy page under the mount, styled, with its logo loaded."""
    path = path_of(page)
    assert path == LEGACY_PREFIX or path.startswith(LEGACY_PREFIX + "/"), page.url
    assert heading in page.locator("h1").inner_text()
    header = page.locator("header.legacy-header")
    assert header.evaluate("e => getComputedStyle(e).backgroundColor") == HEADER_BACKGROUND
    logo = page.locator("#logo")
    # `complete` with a natural width: the image was fetched and decoded, not a broken icon.
    assert logo.evaluate("img => img.complete && img.naturalWidth > 0") is True


def test_a_visitor_clicks_from_the_new_app_through_the_legacy_app(
    server: ServerProcess, page: Page, tmp_path: Path
) -> None:
    page.goto(server.base_url + "/")
    assert page.locator("h1").inner_text() == "The new app"

    # Every request the browser makes from here on (pages, the stylesheet, the logo, the form
    # post and its redirect) is recorded, to check it stayed under the mount.
    responses: list[tuple[str, int]] = []
    page.on("response", lambda response: responses.append((response.url, response.status)))

    page.click("#legacy-link")
    page.wait_for_url("**/legacy/")
    assert_legacy_page(page, "Welcome")

    page.click("header nav >> text=About")
    page.wait_for_url("**/legacy/about")
    assert_legacy_page(page, "Where this app lives")
    assert page.locator("#script-root").inner_text() == LEGACY_PREFIX

    # The old URL redirects; the browser lands on the welcome page, still under the mount.
    page.click("header nav >> text=Old home page")
    page.wait_for_url("**/legacy/")
    assert_legacy_page(page, "Welcome")

    page.click("header nav >> text=Preferences")
    page.wait_for_url("**/legacy/preferences")
    assert_legacy_page(page, "Preferences")
    page.fill("input[name=name]", "Ada")
    page.select_option("select[name=theme]", "dark")
    with page.expect_navigation():
        page.click("button[type=submit]")
    # POST-redirect-GET: the browser followed the redirect back to the form's page.
    assert path_of(page) == "/legacy/preferences"
    assert_legacy_page(page, "Preferences")
    assert page.locator(".flash").inner_text() == "Saved: Ada prefers the dark theme."
    assert page.locator("#visitor").inner_text() == "Ada"
    body_background = page.locator("body").evaluate("e => getComputedStyle(e).backgroundColor")
    assert body_background == DARK_BACKGROUND

    screenshot = tmp_path / "flask-mount.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
    target = os.environ.get("CROSSGATE_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, Path(target) / "flask-mount.png")

    # The session cookie came back with the next page: the welcome page greets the visitor.
    page.click("header nav >> text=Welcome")
    page.wait_for_url("**/legacy/")
    assert page.locator("#visitor").inner_text() == "Ada"

    paths = {urlsplit(url).path for url, _ in responses}
    assert {"/legacy/static/style.css", "/legacy/static/logo.svg", "/legacy/home"} <= paths
    for url, status in responses:
        if urlsplit(url).path == "/favicon.ico":
            continue  # the browser's own guess, not a URL any page gave it
        assert urlsplit(url).path.startswith(LEGACY_PREFIX + "/"), url
        assert status in (200, 302, 304), (url, status)

    # And the way back out of the mount, to the new app.
    page.click("#new-app")
    page.wait_for_url(server.base_url + "/")
    assert page.locator("h1").inner_text() == "The new app"


def test_the_new_app_websocket_works_in_the_browser(server: ServerProcess, page: Page) -> None:
    page.goto(server.base_url + "/")
    status = page.locator("#echo-status")
    status.filter(has_text="open").wait_for()
    page.fill("#echo-input", "hello from chromium")
    page.click("#echo-form button")
    page.locator(".echo-line", has_text="echo: hello from chromium").wait_for()
    # The first message is the server's greeting, with the one process's PID.
    assert page.locator(".echo-line").first.inner_text() == (
        f'{{"type":"hello","pid":{server.process.pid}}}'
    )


# -- the browser helper itself ------------------------------------------------------------------


def test_a_missing_chromium_fails_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_browser, "CHROMIUM", Path("/nonexistent/chromium"))
    with pytest.raises(pytest.fail.Exception, match=r"run `make test`, which installs"), chromium():
        pytest.fail("chromium() should not have started a browser")


def test_the_browser_leaves_no_process_behind() -> None:
    before = set(_browser._descendants(os.getpid()))
    with chromium() as browser, new_page(browser) as page:
        page.set_content("<p id='x'>ready</p>")
        assert page.locator("#x").inner_text() == "ready"
        # The driver and the browser (with its helper processes) are running now.
        assert len(set(_browser._descendants(os.getpid())) - before) >= 2
    assert set(_browser._descendants(os.getpid())) - before == set()
