"""The app configuration of `tickets`."""

from __future__ import annotations

from django.apps import AppConfig


class TicketsConfig(AppConfig):
    """Registers the app under the short label `tickets`."""

    name = "demo_projects.django_helpdesk.tickets"
    label = "tickets"
    verbose_name = "Helpdesk tickets"
    default_auto_field = "django.db.models.BigAutoField"
