"""The admin of tickets, with their comments inline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin

from demo_projects.django_helpdesk.tickets.models import Comment, Ticket

# django-stubs makes these classes generic for the type checker only; at run time Django's
# classes cannot be subscripted (without the `django-stubs-ext` monkeypatch, a dev dependency).
if TYPE_CHECKING:
    CommentInlineBase = admin.TabularInline[Comment, Ticket]
    TicketAdminBase = admin.ModelAdmin[Ticket]
    CommentAdminBase = admin.ModelAdmin[Comment]
else:
    CommentInlineBase = admin.TabularInline
    TicketAdminBase = CommentAdminBase = admin.ModelAdmin


class CommentInline(CommentInlineBase):
    """A ticket's comments, edited on the ticket's page."""

    model = Comment
    extra = 0


@admin.register(Ticket)
class TicketAdmin(TicketAdminBase):
    """Tickets: searchable by title, filterable by status."""

    list_display = ("id", "title", "status", "created")
    list_filter = ("status",)
    search_fields = ("title", "description")
    inlines = (CommentInline,)


@admin.register(Comment)
class CommentAdmin(CommentAdminBase):
    """Comments, newest first."""

    list_display = ("id", "ticket", "author", "created")
    ordering = ("-created",)
