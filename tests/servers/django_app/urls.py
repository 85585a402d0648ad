"""URLs of the Django test project; the same paths as the Flask test app."""

from __future__ import annotations

from django.urls import URLPattern, path, re_path

from tests.servers.django_app import views

urlpatterns: list[URLPattern] = [
    path("", views.hello),
    path("form", views.form),
    path("upload", views.upload),
    path("progress", views.progress),
    path("stream", views.stream),
    path("release", views.release),
    path("sse", views.sse),
    path("barrier", views.barrier),
    # Any path below /where/, including ones that are not valid UTF-8 once decoded.
    re_path(r"^where/", views.where),
]
