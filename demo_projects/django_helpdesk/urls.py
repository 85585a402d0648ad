"""The legacy URLconf: the pages of stage 0, never edited by the later stages."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path

from demo_projects.django_helpdesk.tickets import views

urlpatterns = [
    path("", views.landing, name="landing"),
    path("tickets/", views.ticket_list, name="ticket-list"),
    path("tickets/export.csv", views.export_csv, name="ticket-export"),
    path("tickets/<int:ticket_id>/", views.ticket_detail, name="ticket-detail"),
    path("tickets/<int:ticket_id>/attachment/", views.attachment, name="ticket-attachment"),
    path("slow/", views.slow, name="slow"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    # The admin's CSS and JS, served by Django itself so that every stage and every server shows
    # the same admin without a separate static-file server (fine for a demo, not for production).
    re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}),
]
