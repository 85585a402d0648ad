"""URLs of the thread-sensitivity project."""

from __future__ import annotations

from django.urls import URLPattern, path

from tests.concurrency.django_project import views

urlpatterns: list[URLPattern] = [
    path("async-atomic", views.async_atomic),
    path("sync-atomic", views.sync_atomic),
]
