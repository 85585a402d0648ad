"""The legacy views of the helpdesk: plain synchronous Django, as stage 0 wrote them.

No later stage edits this module: stage 1 serves these views through `WSGIToASGI`, and stage 3
serves them as the fallback of the new async API.
"""

from __future__ import annotations

import csv
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render

from demo_projects.django_helpdesk.tickets.forms import CommentForm
from demo_projects.django_helpdesk.tickets.models import Ticket

# The longest `/slow/` accepts: a demo of concurrency, not a way to hold workers forever.
MAX_SLOW_SECONDS = 10.0
# How long the export waits for the test gate (settings.HELPDESK_EXPORT_GATE) before it
# finishes anyway, so a forgotten gate never holds a worker forever.
EXPORT_GATE_TIMEOUT = 30.0

STAGES = {
    "0": "Stage 0: the legacy WSGI application under gunicorn.",
    "1": "Stage 1: the same WSGI application wrapped in WSGIToASGI, under an ASGI server.",
    "2": "Stage 2: stage 1 plus websockets routed to a live-updates endpoint.",
    "3": "Stage 3: new async views served by Django's ASGI handler, the legacy app as fallback.",
}


def landing(request: HttpRequest) -> HttpResponse:
    """The landing page: which stage is running, what each stage is, and what to try."""
    stage = os.environ.get("HELPDESK_STAGE", "0")
    first = Ticket.objects.order_by("id").first()
    attached = Ticket.objects.exclude(attachment="").order_by("id")
    context = {
        "stage": stage,
        "stage_text": STAGES.get(stage, f"Stage {stage}"),
        "stages": sorted(STAGES.items()),
        "first_ticket": first,
        "attached": attached,
    }
    return render(request, "landing.html", context)


def ticket_list(request: HttpRequest) -> HttpResponse:
    """Every ticket, with its comment count."""
    tickets = Ticket.objects.annotate(comment_count=Count("comments"))
    return render(request, "tickets/list.html", {"tickets": tickets})


def ticket_detail(request: HttpRequest, ticket_id: int) -> HttpResponse:
    """A ticket and its comments; a POST adds a comment (CSRF-protected, no login needed).

    A valid POST redirects back to the page (POST-redirect-GET), so a reload never posts twice;
    an invalid one renders the form with its errors and a 400.
    """
    ticket = get_object_or_404(Ticket, pk=ticket_id)
    if request.method == "POST":
        form = CommentForm(request.POST)
        if form.is_valid():
            comment = form.save(commit=False)
            comment.ticket = ticket
            comment.save()
            return redirect("ticket-detail", ticket_id=ticket.pk)
        status = 400
    else:
        form = CommentForm()
        status = 200
    context = {"ticket": ticket, "comments": ticket.comments.all(), "form": form}
    return render(request, "tickets/detail.html", context, status=status)


def attachment(request: HttpRequest, ticket_id: int) -> FileResponse:
    """The ticket's attached file, as a download.

    `FileResponse` hands the open file to the WSGI server's `wsgi.file_wrapper` (PEP 3333
    "Optional Platform-Specific File Handling"): gunicorn sends it with `sendfile()`, and
    `WSGIToASGI` turns it into `http.response.pathsend` when the ASGI server offers it (it
    finds the real path of the `FieldFile`, whose own `name` is relative to the storage).
    """
    ticket = get_object_or_404(Ticket, pk=ticket_id)
    if not ticket.attachment:
        raise Http404("this ticket has no attachment")
    filename = Path(ticket.attachment.name or "attachment").name
    return FileResponse(ticket.attachment.open("rb"), as_attachment=True, filename=filename)


class _Echo:
    """A file-like object whose `write` returns what it was given, for `csv.writer`."""

    def write(self, value: str) -> str:
        return value


def _export_rows() -> Iterator[str]:
    """One CSV line per ticket, read from the database in chunks with `.iterator()`."""
    writer = csv.writer(_Echo())
    yield writer.writerow(["id", "title", "status", "created", "comments"])
    gate: str | None = getattr(settings, "HELPDESK_EXPORT_GATE", None)
    rows = (
        Ticket.objects.order_by("id")
        .annotate(comment_count=Count("comments"))
        .values_list("id", "title", "status", "created", "comment_count")
    )
    for index, (pk, title, status, created, comments) in enumerate(rows.iterator(chunk_size=100)):
        if index == 1 and gate:
            _wait_for_gate(Path(gate))
        yield writer.writerow([pk, title, status, created.isoformat(), comments])
    if gate:
        Path(gate + ".done").touch()


def _wait_for_gate(gate: Path) -> None:
    """Test hook: announce that one row is out, then wait until the test creates `gate`.

    With the `.done` marker written after the last row, a test can tell "the client got the
    first rows while the generator was still held here" from "the server buffered it all".
    """
    gate.with_name(gate.name + ".waiting").touch()
    deadline = time.monotonic() + EXPORT_GATE_TIMEOUT
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


@login_required
def export_csv(request: HttpRequest) -> HttpResponseBase:
    """Every ticket as CSV, streamed row by row from a synchronous generator.

    Under Django's own ASGI handler a sync iterator is read whole before the first byte goes
    out; through `WSGIToASGI` each row goes out as the generator yields it.
    """
    response = StreamingHttpResponse(_export_rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="tickets.csv"'
    return response


class _InFlight:
    """How many `/slow/` requests this process is serving right now, and the most at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> int:
        """Leave; returns how many were in flight just before this one left."""
        with self._lock:
            count = self.now
            self.now -= 1
            return count


_slow_in_flight = _InFlight()


def slow(request: HttpRequest) -> HttpResponse:
    """Sleep `?seconds=` (default 3, at most 10) in a worker, then say how long and how crowded.

    The answer is `{"slept": s, "in_flight": n, "peak": p}`: `n` is how many `/slow/` requests
    this process was serving when this one woke up (itself included), `p` the most it ever
    served at once. They let a test prove requests overlapped without measuring time.
    """
    raw = request.GET.get("seconds", "3")
    try:
        seconds = float(raw)
    except ValueError:
        return JsonResponse({"error": f"seconds must be a number, not {raw!r}"}, status=400)
    if not 0 <= seconds <= MAX_SLOW_SECONDS:
        return JsonResponse(
            {"error": f"seconds must be between 0 and {MAX_SLOW_SECONDS:g}"}, status=400
        )
    _slow_in_flight.enter()
    try:
        time.sleep(seconds)
    finally:
        in_flight = _slow_in_flight.leave()
    return JsonResponse({"slept": seconds, "in_flight": in_flight, "peak": _slow_in_flight.peak})
