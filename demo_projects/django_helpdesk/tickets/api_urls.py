"""The URLconf of the new async API, and nothing else.

`NewRoutesHandler` resolves against this module alone, so any other path gets Django's 404,
which is what makes stage 3's `Fallback` hand the request to the legacy application.
"""

from __future__ import annotations

from django.urls import path

from demo_projects.django_helpdesk.tickets import api

urlpatterns = [
    path("api/tickets/", api.ticket_list, name="api-ticket-list"),
    path("api/tickets/<int:ticket_id>/", api.ticket_detail, name="api-ticket-detail"),
    path("api/tickets/<int:ticket_id>/comments/", api.comment_create, name="api-comment-create"),
]
