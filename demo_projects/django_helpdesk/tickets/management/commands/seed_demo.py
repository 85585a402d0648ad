"""`manage.py seed_demo`: the demo's users, tickets, comments and attachments (`demo_data`).

Idempotent: users are created when missing, tickets only into an empty table, and the attachment
files are rewritten when missing, so running it twice changes nothing.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from demo_projects.django_helpdesk.tickets.demo_data import (
    AUTHORS,
    BINARY_ATTACHMENT,
    REMARKS,
    SUBJECTS,
    TEXT_ATTACHMENT,
    TICKET_COUNT,
    USERS,
    binary_attachment,
    text_attachment,
)
from demo_projects.django_helpdesk.tickets.models import Comment, Ticket


class Command(BaseCommand):
    help = "Create the demo users, tickets, comments and attachments (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        self._write_attachments()
        for username, password, is_admin in USERS:
            if not User.objects.filter(username=username).exists():
                if is_admin:
                    User.objects.create_superuser(username, f"{username}@example.com", password)
                else:
                    User.objects.create_user(username, f"{username}@example.com", password)
        if Ticket.objects.exists():
            self.stdout.write("tickets already seeded")
            return
        self._seed_tickets()
        self.stdout.write(f"seeded {TICKET_COUNT} tickets")

    def _write_attachments(self) -> None:
        for name, content in (
            (TEXT_ATTACHMENT, text_attachment),
            (BINARY_ATTACHMENT, binary_attachment),
        ):
            path = Path(settings.MEDIA_ROOT) / name
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content())

    @transaction.atomic
    def _seed_tickets(self) -> None:
        chooser = random.Random(3)
        start = timezone.now() - timedelta(days=TICKET_COUNT)
        for number in range(1, TICKET_COUNT + 1):
            subject = SUBJECTS[(number - 1) % len(SUBJECTS)]
            ticket = Ticket.objects.create(
                title=f"{subject} ({number})" if number > len(SUBJECTS) else subject,
                description=f"Reported by {chooser.choice(AUTHORS)}. {chooser.choice(REMARKS)}",
                status=Ticket.Status.CLOSED if number % 4 == 0 else Ticket.Status.OPEN,
                created=start + timedelta(days=number),
            )
            if number == 1:
                ticket.attachment.name = TEXT_ATTACHMENT
            elif number == 2:
                ticket.attachment.name = BINARY_ATTACHMENT
            ticket.save()
            for _ in range(chooser.randint(0, 3)):
                Comment.objects.create(
                    ticket=ticket, author=chooser.choice(AUTHORS), body=chooser.choice(REMARKS)
                )
