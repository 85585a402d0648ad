"""App configuration of the notes app."""

from __future__ import annotations

from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = "tests.concurrency.django_project.notes"
    label = "notes"
