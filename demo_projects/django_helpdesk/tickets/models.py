"""Tickets and their comments."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from django.db.models.fields.related_descriptors import RelatedManager


class Ticket(models.Model):
    """A support request, with an optional attached file."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created = models.DateTimeField(default=timezone.now)
    attachment = models.FileField(upload_to="attachments/", blank=True)

    # Declared, not implied, so that the type checker knows them whichever settings module the
    # django-stubs plugin loads (the repository's points at another project).
    objects: ClassVar[models.Manager[Ticket]] = models.Manager()
    if TYPE_CHECKING:
        comments: RelatedManager[Comment]

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class Comment(models.Model):
    """A comment on a ticket, by anyone: commenting needs no login."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="comments")
    author = models.CharField(max_length=80)
    body = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    objects: ClassVar[models.Manager[Comment]] = models.Manager()
    if TYPE_CHECKING:
        ticket_id: int

    class Meta:
        ordering = ("created", "id")

    def __str__(self) -> str:
        return f"{self.author} on #{self.ticket_id}"
