"""The new async API (`tickets/api.py`) served by `new_routes_application()` alone.

Django's own `ASGIHandler` (behind a `ProtocolRouter` that answers lifespan, as in stage 3) in a
uvicorn process: Django's settings are process-global, so the API is not set up in the pytest
process. Stage 3's composition with the legacy app is tested with the other stages.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from demo_projects.django_helpdesk.tickets.demo_data import TICKET_COUNT
from tests.demos.django_helpdesk.conftest import HelpdeskServer, StartHelpdesk

pytestmark = pytest.mark.servers

API_APP = "tests.demos.django_helpdesk.api_app:application"


@pytest.fixture(scope="module")
def api_server(start_helpdesk: StartHelpdesk) -> HelpdeskServer:
    return start_helpdesk(1, "uvicorn", app=API_APP)


@pytest.fixture
def client(api_server: HelpdeskServer) -> Iterator[httpx.Client]:
    with api_server.client() as client:
        yield client


def test_lifespan_is_answered_by_the_router(api_server: HelpdeskServer) -> None:
    # uvicorn runs with --lifespan on: a refused lifespan would have stopped it at startup.
    assert "Application startup complete" in api_server.log()


def test_list(client: httpx.Client) -> None:
    response = client.get("/api/tickets/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    tickets = response.json()["tickets"]
    assert [ticket["id"] for ticket in tickets] == list(range(1, TICKET_COUNT + 1))
    first = tickets[0]
    assert set(first) == {
        "id",
        "title",
        "description",
        "status",
        "created",
        "attachment",
        "comment_count",
    }
    assert first["attachment"] == "/tickets/1/attachment/"
    assert tickets[2]["attachment"] is None


def test_filter_by_status(client: httpx.Client) -> None:
    everything = client.get("/api/tickets/").json()["tickets"]
    by_status = {}
    for status in ("open", "closed"):
        response = client.get("/api/tickets/", params={"status": status})
        assert response.status_code == 200
        by_status[status] = response.json()["tickets"]
        assert by_status[status]
        assert {ticket["status"] for ticket in by_status[status]} == {status}
    assert len(by_status["open"]) + len(by_status["closed"]) == len(everything)


def test_filter_rejects_an_unknown_status(client: httpx.Client) -> None:
    response = client.get("/api/tickets/", params={"status": "pending"})
    assert response.status_code == 400
    assert response.json() == {"error": "status must be one of open, closed, not 'pending'"}


def test_detail_has_the_comments(client: httpx.Client) -> None:
    listed = {ticket["id"]: ticket for ticket in client.get("/api/tickets/").json()["tickets"]}
    ticket_id = next(pk for pk, ticket in listed.items() if ticket["comment_count"] > 0)
    response = client.get(f"/api/tickets/{ticket_id}/")
    assert response.status_code == 200
    detail = response.json()
    assert detail["id"] == ticket_id
    assert detail["title"] == listed[ticket_id]["title"]
    assert len(detail["comments"]) == listed[ticket_id]["comment_count"]
    assert set(detail["comments"][0]) == {"id", "author", "body", "created"}


def test_unknown_ticket_is_a_404(client: httpx.Client) -> None:
    response = client.get("/api/tickets/9999/")
    assert response.status_code == 404
    assert response.json() == {"error": "no ticket 9999"}


@pytest.mark.parametrize("path", ["/", "/tickets/", "/tickets/1/", "/admin/", "/api/"])
def test_every_other_path_is_a_404(client: httpx.Client, path: str) -> None:
    """The handler serves the API's routes only: the 404 that sends stage 3 to the legacy app."""
    response = client.get(path)
    assert response.status_code == 404


def test_post_comment(client: httpx.Client) -> None:
    response = client.post("/api/tickets/4/comments/", json={"author": "api", "body": "via JSON"})
    assert response.status_code == 201
    created = response.json()
    assert created["author"] == "api"
    assert created["body"] == "via JSON"
    assert created["ticket"] == 4
    assert response.headers["location"] == "/api/tickets/4/"
    comments = client.get("/api/tickets/4/").json()["comments"]
    assert comments[-1] == {key: created[key] for key in ("id", "author", "body", "created")}


def test_post_comment_to_an_unknown_ticket(client: httpx.Client) -> None:
    response = client.post("/api/tickets/9999/comments/", json={"author": "a", "body": "b"})
    assert response.status_code == 404
    assert response.json() == {"error": "no ticket 9999"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "the body must be JSON: "),
        (b"\xff\xfe", "the body must be JSON: "),
        (b'["author", "body"]', 'the body must be a JSON object {"author": ..., "body": ...}'),
        (b'{"body": "no author"}', "author must be a non-empty string"),
        (b'{"author": "  ", "body": "blank author"}', "author must be a non-empty string"),
        (b'{"author": 7, "body": "number"}', "author must be a non-empty string"),
        (b'{"author": "' + b"x" * 81 + b'", "body": "long"}', "author must be at most 80 "),
        (b'{"author": "a"}', "body must be a non-empty string"),
        (b'{"author": "a", "body": ""}', "body must be a non-empty string"),
    ],
)
def test_post_comment_rejects_bad_input(client: httpx.Client, content: bytes, reason: str) -> None:
    before = len(client.get("/api/tickets/5/").json()["comments"])
    response = client.post(
        "/api/tickets/5/comments/", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith(reason)
    assert len(client.get("/api/tickets/5/").json()["comments"]) == before


def test_wrong_methods_get_a_405(client: httpx.Client) -> None:
    # csrf_exempt: a POST needs no token (test_post_comment sends none) and a POST to a
    # read-only route gets its 405 rather than a CSRF 403.
    assert client.get("/api/tickets/5/comments/").status_code == 405
    assert client.post("/api/tickets/", json={}).status_code == 405
    assert client.delete("/api/tickets/5/").status_code == 405
