"""The new JSON API: async views on the async ORM, served by Django's own ASGI handler.

- `GET /api/tickets/` lists the tickets (`?status=open` or `closed` filters them);
- `GET /api/tickets/<id>/` is one ticket with its comments;
- `POST /api/tickets/<id>/comments/` with a JSON object `{"author", "body"}` adds a comment
  and answers 201 with it; a body that is not such an object gets a 400 with the reason.

The API authenticates nobody and reads no cookie, as anyone may comment on the legacy page too,
so there is no user's authority for a cross-site request to borrow: the views are `csrf_exempt`,
and a wrong method gets its 405 rather than a CSRF 403. `new_routes_application` (from
`api_handler`) serves these routes alone.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Count
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from demo_projects.django_helpdesk.tickets.api_handler import (
    NewRoutesHandler,
    new_routes_application,
)
from demo_projects.django_helpdesk.tickets.models import Comment, Ticket

__all__ = [
    "NewRoutesHandler",
    "comment_create",
    "new_routes_application",
    "ticket_detail",
    "ticket_list",
]

AUTHOR_MAX_LENGTH = 80


def _error(status: int, reason: str) -> JsonResponse:
    return JsonResponse({"error": reason}, status=status)


def _ticket(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.pk,
        "title": ticket.title,
        "description": ticket.description,
        "status": ticket.status,
        "created": ticket.created.isoformat(),
        "attachment": f"/tickets/{ticket.pk}/attachment/" if ticket.attachment else None,
    }


def _comment(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.pk,
        "author": comment.author,
        "body": comment.body,
        "created": comment.created.isoformat(),
    }


@csrf_exempt
@require_GET
async def ticket_list(request: HttpRequest) -> JsonResponse:
    """Every ticket with its comment count, oldest first; `?status=` filters by status."""
    tickets = Ticket.objects.order_by("id")
    status = request.GET.get("status")
    if status is not None:
        if status not in Ticket.Status.values:
            allowed = ", ".join(Ticket.Status.values)
            return _error(400, f"status must be one of {allowed}, not {status!r}")
        tickets = tickets.filter(status=status)
    counts = Comment.objects.values("ticket").annotate(count=Count("id")).order_by()
    count_of = {row["ticket"]: row["count"] async for row in counts}
    found = [
        {**_ticket(ticket), "comment_count": count_of.get(ticket.pk, 0)} async for ticket in tickets
    ]
    return JsonResponse({"tickets": found})


@csrf_exempt
@require_GET
async def ticket_detail(request: HttpRequest, ticket_id: int) -> JsonResponse:
    """One ticket and its comments, or a 404."""
    try:
        ticket = await Ticket.objects.aget(pk=ticket_id)
    except Ticket.DoesNotExist:
        return _error(404, f"no ticket {ticket_id}")
    comments = [_comment(comment) async for comment in ticket.comments.all()]
    return JsonResponse({**_ticket(ticket), "comments": comments})


def _comment_fields(body: bytes) -> tuple[str, str] | str:
    """`(author, body)` from a JSON request body, or the reason it is not acceptable."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"the body must be JSON: {exc}"
    if not isinstance(data, dict):
        return 'the body must be a JSON object {"author": ..., "body": ...}'
    author, text = data.get("author"), data.get("body")
    if not isinstance(author, str) or not author.strip():
        return "author must be a non-empty string"
    if len(author) > AUTHOR_MAX_LENGTH:
        return f"author must be at most {AUTHOR_MAX_LENGTH} characters"
    if not isinstance(text, str) or not text.strip():
        return "body must be a non-empty string"
    return author, text


@csrf_exempt
@require_POST
async def comment_create(request: HttpRequest, ticket_id: int) -> JsonResponse:
    """Add a comment to a ticket: 201 with the comment, 400 with a reason, 404 for no ticket."""
    fields = _comment_fields(request.body)
    if isinstance(fields, str):
        return _error(400, fields)
    try:
        ticket = await Ticket.objects.aget(pk=ticket_id)
    except Ticket.DoesNotExist:
        return _error(404, f"no ticket {ticket_id}")
    author, text = fields
    comment = await Comment.objects.acreate(ticket=ticket, author=author, body=text)
    response = _comment(comment)
    return JsonResponse(
        {**response, "ticket": ticket.pk},
        status=201,
        headers={"Location": f"/api/tickets/{ticket.pk}/"},
    )
