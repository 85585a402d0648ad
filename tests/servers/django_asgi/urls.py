"""URLs: the async views, then every URL of the WSGI test project."""

from __future__ import annotations

from django.urls import URLPattern, path

from tests.servers.django_app.urls import urlpatterns as wsgi_urlpatterns
from tests.servers.django_asgi import views

urlpatterns: list[URLPattern] = [
    path("echo", views.echo),
    path("sse", views.sse),
    path("file", views.file),
    *wsgi_urlpatterns,
]
