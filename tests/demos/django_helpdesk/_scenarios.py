"""What a user does with the legacy pages, as functions shared by the stage 0 and stage 1 tests.

Each takes an `httpx.Client` aimed at a running server (redirects not followed, so every
redirect is checked) and asserts what the user would see. The same functions passing under
gunicorn (stage 0) and through `WSGIToASGI` under an ASGI server (stage 1) is the proof that
stage 1 changed the server and not the application.
"""

from __future__ import annotations

import csv
import html
import io
import re
from pathlib import Path

import httpx

from demo_projects.django_helpdesk.tickets.demo_data import (
    BINARY_ATTACHMENT,
    BINARY_SIZE,
    TEXT_ATTACHMENT,
    TICKET_COUNT,
)

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def csrf_token(page: httpx.Response) -> str:
    """The CSRF token of the (first) form on a page."""
    found = _CSRF_INPUT.search(page.text)
    assert found, f"no CSRF token in the page:\n{page.text[:2000]}"
    return found.group(1)


def login(client: httpx.Client, username: str, password: str, *, path: str) -> None:
    """Log in through the login form at `path` (the site's or the admin's), as a browser would."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    answer = client.post(
        path,
        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf_token(page)},
    )
    assert answer.status_code == 302, answer.text
    assert "sessionid" in client.cookies


def check_pages(client: httpx.Client, stage: int) -> None:
    """The landing page names the stage; the list, a ticket page and a 404 render."""
    landing = client.get("/")
    assert landing.status_code == 200
    assert f'data-stage="{stage}"' in landing.text
    assert 'id="try-ticket" href="/tickets/1/"' in landing.text
    listing = client.get("/tickets/")
    assert listing.status_code == 200
    assert listing.text.count("<tr data-ticket-id=") == TICKET_COUNT
    detail = client.get("/tickets/1/")
    assert detail.status_code == 200
    assert '<ol id="comments">' in detail.text
    assert '<span id="live-status">' in detail.text
    assert 'id="attachment" href="/tickets/1/attachment/"' in detail.text
    assert client.get("/tickets/9999/").status_code == 404
    # CommonMiddleware's APPEND_SLASH still redirects, whoever serves the app.
    moved = client.get("/tickets")
    assert moved.status_code == 301
    assert moved.headers["location"] == "/tickets/"


def check_comment_form(client: httpx.Client, author: str) -> None:
    """A comment posted with the form's CSRF token shows on the page; without it, a 403."""
    page = client.get("/tickets/3/")
    token = csrf_token(page)
    body = f"<b>not markup</b> from {author}"
    posted = client.post(
        "/tickets/3/", data={"author": author, "body": body, "csrfmiddlewaretoken": token}
    )
    # POST-redirect-GET: back to the page, which now lists the comment (escaped).
    assert posted.status_code == 302, posted.text
    assert posted.headers["location"] == "/tickets/3/"
    shown = client.get("/tickets/3/").text
    assert f'<strong class="author">{author}</strong>' in shown
    assert f'<span class="body">{html.escape(body)}</span>' in shown
    assert re.search(r'<li class="comment" data-comment-id="\d+"><strong class="author">', shown)
    # An empty body is refused with the form and its errors.
    empty = client.post(
        "/tickets/3/", data={"author": author, "body": "", "csrfmiddlewaretoken": token}
    )
    assert empty.status_code == 400
    assert 'class="errorlist"' in empty.text
    # The same post without the token: Django's CSRF protection answers 403.
    forged = client.post("/tickets/3/", data={"author": "mallory", "body": "forged"})
    assert forged.status_code == 403
    assert "mallory" not in client.get("/tickets/3/").text


def check_login_and_export(client: httpx.Client) -> None:
    """The export wants a login; logged in it is one CSV row per ticket; logged out, a login."""
    anonymous = client.get("/tickets/export.csv")
    assert anonymous.status_code == 302
    assert anonymous.headers["location"] == "/accounts/login/?next=/tickets/export.csv"
    login(client, "demo", "demo", path="/accounts/login/")
    assert "Log out demo" in client.get("/").text
    export = client.get("/tickets/export.csv")
    assert export.status_code == 200
    assert export.headers["content-type"] == "text/csv; charset=utf-8"
    assert export.headers["content-disposition"] == 'attachment; filename="tickets.csv"'
    rows = list(csv.reader(io.StringIO(export.text)))
    assert rows[0] == ["id", "title", "status", "created", "comments"]
    assert [int(row[0]) for row in rows[1:]] == list(range(1, TICKET_COUNT + 1))
    # Logging out is a POST with the CSRF token of the page's logout form.
    page = client.get("/")
    logout = client.post("/accounts/logout/", data={"csrfmiddlewaretoken": csrf_token(page)})
    assert logout.status_code == 302
    assert logout.headers["location"] == "/"
    assert "Log in" in client.get("/").text
    assert client.get("/tickets/export.csv").status_code == 302


def check_attachments(client: httpx.Client, data_dir: Path) -> None:
    """The attachments download byte for byte, as attachments; a ticket without one is a 404."""
    for ticket, name in ((1, TEXT_ATTACHMENT), (2, BINARY_ATTACHMENT)):
        response = client.get(f"/tickets/{ticket}/attachment/")
        assert response.status_code == 200
        expected = (data_dir / "media" / name).read_bytes()
        assert response.content == expected
        assert response.headers["content-length"] == str(len(expected))
        filename = Path(name).name
        assert response.headers["content-disposition"] == f'attachment; filename="{filename}"'
    assert len(expected) == BINARY_SIZE
    assert client.get("/tickets/3/attachment/").status_code == 404


def check_admin(client: httpx.Client) -> None:
    """The admin asks for a login, accepts the superuser and lists the tickets, styled."""
    entry = client.get("/admin/")
    assert entry.status_code == 302
    assert entry.headers["location"] == "/admin/login/?next=/admin/"
    page = client.get("/admin/login/")
    assert page.status_code == 200
    assert "Django administration" in page.text
    login(client, "admin", "admin", path="/admin/login/")
    tickets = client.get("/admin/tickets/ticket/")
    assert tickets.status_code == 200
    assert f"{TICKET_COUNT} tickets" in tickets.text
    # The admin's CSS comes from Django's static view: no separate static server needed.
    css = client.get("/static/admin/css/base.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


def check_slow(client: httpx.Client) -> None:
    """`/slow/` answers what it slept and how many were in flight; bad input gets a 400."""
    answer = client.get("/slow/", params={"seconds": "0"})
    assert answer.status_code == 200
    assert answer.json()["slept"] == 0.0
    assert answer.json()["in_flight"] == 1
    for bad in ("abc", "11", "-1", "nan"):
        refused = client.get("/slow/", params={"seconds": bad})
        assert refused.status_code == 400
        assert "seconds must be" in refused.json()["error"]
