"""The one model: a line of text, written and counted by the probes."""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=100)
    # Declared, not implied: the type checker's Django settings do not install this app.
    objects: ClassVar[models.Manager[Note]] = models.Manager()

    class Meta:
        app_label = "notes"
