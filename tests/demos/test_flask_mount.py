"""The Flask mount demo under uvicorn, as a real process: Flask at ``/legacy``, Starlette beside it.

One server process serves the whole module (the tests only read, or write to their own
client's session). It runs with ``--lifespan on``, so a lifespan failure anywhere stops it from
starting; its log is checked for errors once it has stopped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from websockets.sync.client import connect

from demo_projects.flask_mount.app import LEGACY_PREFIX
from tests.servers._servers import ServerProcess, running

pytestmark = pytest.mark.servers

APP = "demo_projects.flask_mount.app:application"
CLIENT_TIMEOUT = 10.0
# The one link of the legacy pages that leaves the mount on purpose: back to the new app.
NEW_APP_HOME = "/"
# A crawl of the legacy app visits its handful of pages; the bound catches a link loop that
# keeps making new URLs.
MAX_PAGES = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("flask-mount") / "uvicorn.log"
    process = ServerProcess("uvicorn", APP, log)
    with running(process):
        yield process
    problems = [
        line
        for line in process.log().splitlines()
        if "Traceback" in line or line.startswith(("ERROR", "WARNING"))
    ]
    assert not problems, process.describe()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as client:
        yield client


class _Links(HTMLParser):
    """Every URL a page points at: links, stylesheets, images, scripts and form actions."""

    _ATTRIBUTES: ClassVar[dict[str, str]] = {
        "a": "href",
        "link": "href",
        "img": "src",
        "script": "src",
        "form": "action",
    }

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = self._ATTRIBUTES.get(tag)
        for name, value in attrs:
            if name == wanted and value is not None:
                self.urls.append(value)


def links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.urls


def element_text(html: str, element_id: str) -> str:
    """The text of the (childless) element with ``id=element_id``; fails when there is none."""
    found = re.search(rf'id="{re.escape(element_id)}"[^>]*>([^<]*)<', html)
    assert found is not None, f"no element with id {element_id!r} in:\n{html}"
    return found.group(1)


def under_mount(url: str) -> bool:
    path = urlsplit(url).path
    return path == LEGACY_PREFIX or path.startswith(LEGACY_PREFIX + "/")


# -- the new app: Starlette at / ----------------------------------------------------------------


def test_the_new_app_home_links_into_the_legacy_app(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "/legacy/" in links(response.text)


def test_the_api_shows_the_state_the_lifespan_set_up(
    server: ServerProcess, client: httpx.Client
) -> None:
    response = client.get("/api/status")
    assert response.status_code == 200
    status = response.json()
    assert status["app"] == "starlette"
    assert status["legacy_mount"] == LEGACY_PREFIX
    # Both come from the lifespan state: without the router's fan-out to Starlette the view
    # would fail with an AttributeError (a 500).
    assert datetime.fromisoformat(status["started_at"]).tzinfo is not None
    assert status["lifespan_pid"] == server.process.pid


def test_an_unknown_path_outside_the_mount_is_the_new_app_404(client: httpx.Client) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.text == "Not Found"  # Starlette's, not Flask's HTML page


def test_the_websocket_echoes(server: ServerProcess) -> None:
    with connect(server.ws_url + "/ws/echo", open_timeout=CLIENT_TIMEOUT) as socket:
        hello = json.loads(socket.recv(timeout=CLIENT_TIMEOUT))
        assert hello == {"type": "hello", "pid": server.process.pid}
        socket.send("ping")
        assert socket.recv(timeout=CLIENT_TIMEOUT) == "echo: ping"
        socket.send("café")
        assert socket.recv(timeout=CLIENT_TIMEOUT) == "echo: café"


def test_one_process_serves_both_apps(server: ServerProcess, client: httpx.Client) -> None:
    # The PID of the process the test started, reported by the Starlette API, by the websocket
    # and by a page Flask rendered: one process, no workers, serves everything.
    api_pid = client.get("/api/status").json()["pid"]
    flask_pid = int(element_text(client.get("/legacy/").text, "pid"))
    assert api_pid == flask_pid == server.process.pid
    # No child process either (uvicorn without --workers serves from the process itself).
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    assert children.read_text(encoding="ascii").split() == []


# -- the legacy app: Flask at /legacy -----------------------------------------------------------


def test_flask_sees_the_mount_as_its_script_name(client: httpx.Client) -> None:
    page = client.get("/legacy/about")
    assert page.status_code == 200
    assert element_text(page.text, "script-root") == LEGACY_PREFIX
    assert element_text(page.text, "path-info") == "/about"
    assert element_text(page.text, "url-for") == "/legacy/about"


def test_every_link_on_the_legacy_pages_stays_under_the_mount_and_resolves(
    client: httpx.Client,
) -> None:
    to_visit = [LEGACY_PREFIX + "/"]
    seen: set[str] = set(to_visit)
    pages = 0
    while to_visit:
        url = to_visit.pop()
        response = client.get(url)
        if response.is_redirect:
            location = response.headers["location"]
            assert under_mount(location), f"{url} redirects out of the mount, to {location}"
            response = client.get(location)
        assert response.status_code == 200, f"{url} answered {response.status_code}"
        if not response.headers["content-type"].startswith("text/html"):
            continue
        pages += 1
        assert pages <= MAX_PAGES, f"more than {MAX_PAGES} pages: {sorted(seen)}"
        for link in links(response.text):
            if link == NEW_APP_HOME:
                continue
            assert under_mount(link), f"{url} links out of the mount, to {link}"
            target = urljoin(str(response.url), link)
            if target not in seen:
                seen.add(target)
                to_visit.append(target)
    assert pages >= 3  # welcome, about, preferences
    # Static files were among the links, under the mount.
    assert {urlsplit(url).path for url in seen} >= {
        "/legacy/static/style.css",
        "/legacy/static/logo.svg",
        "/legacy/preferences",
    }


def test_the_new_app_link_on_the_legacy_pages_resolves(client: httpx.Client) -> None:
    assert NEW_APP_HOME in links(client.get("/legacy/").text)
    assert client.get(NEW_APP_HOME).status_code == 200


def test_static_files_are_served_under_the_mount(client: httpx.Client) -> None:
    css = client.get("/legacy/static/style.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "body.theme-dark" in css.text
    logo = client.get("/legacy/static/logo.svg")
    assert logo.status_code == 200
    assert logo.headers["content-type"].startswith("image/svg+xml")
    assert logo.content.startswith(b"<svg")


def test_the_redirect_view_redirects_under_the_mount(client: httpx.Client) -> None:
    response = client.get("/legacy/home")
    assert response.status_code == 302
    assert response.headers["location"] == "/legacy/"


def test_the_bare_prefix_redirects_to_the_legacy_index(client: httpx.Client) -> None:
    response = client.get("/legacy")
    assert response.status_code == 308
    assert urlsplit(response.headers["location"]).path == "/legacy/"


def test_an_unknown_path_inside_the_mount_is_flask_404(client: httpx.Client) -> None:
    response = client.get("/legacy/nope")
    assert response.status_code == 404
    assert "<h1>Not Found</h1>" in response.text  # Flask's page, not Starlette's


def test_the_session_form_round_trips_under_the_mount(client: httpx.Client) -> None:
    form = client.get("/legacy/preferences")
    assert form.status_code == 200
    assert '<form method="post" action="/legacy/preferences">' in form.text

    saved = client.post("/legacy/preferences", data={"name": "Ada", "theme": "dark"})
    assert saved.status_code == 302
    assert saved.headers["location"] == "/legacy/preferences"
    cookie = saved.headers["set-cookie"]
    assert cookie.startswith("session=")
    # The cookie is scoped to the mount: the browser keeps it away from the new app.
    assert "Path=/legacy;" in cookie or cookie.endswith("Path=/legacy")
    assert "HttpOnly" in cookie

    page = client.get(saved.headers["location"])
    assert page.status_code == 200
    assert element_text(page.text, "visitor") == "Ada"
    assert element_text(page.text, "theme") == "dark"
    assert '<body class="theme-dark">' in page.text
    assert "Saved: Ada prefers the dark theme." in page.text
    # The flashed message was shown once, and the session outlives it.
    again = client.get("/legacy/")
    assert "Saved:" not in again.text
    assert element_text(again.text, "visitor") == "Ada"


def test_the_session_cookie_never_reaches_the_new_app(client: httpx.Client) -> None:
    client.post("/legacy/preferences", data={"name": "Grace", "theme": "light"})
    assert "session" in client.cookies
    # httpx honours the cookie's Path as a browser does.
    assert "cookie" not in client.get("/api/status").request.headers
    assert "cookie" in client.get("/legacy/").request.headers


def test_a_bad_form_is_a_400_with_the_reason(client: httpx.Client) -> None:
    response = client.post("/legacy/preferences", data={"name": "", "theme": "dark"})
    assert response.status_code == 400
    assert "Please give a name of 1 to 40 characters." in response.text
    response = client.post("/legacy/preferences", data={"name": "Ada", "theme": "neon"})
    assert response.status_code == 400
    assert "The theme must be one of: light, dark." in response.text
    assert "set-cookie" not in response.headers
