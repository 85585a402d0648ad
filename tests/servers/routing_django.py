"""A one-module Django project (settings, URLs and a view) for the routing server tests.

Mounted under ``/django`` by ``routing_mixed.py``, it answers the URLs Django's ``reverse``
builds, which must include the mount prefix (Django reads it from ``SCRIPT_NAME``).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, path, reverse

# Fixed and public: this project only ever serves tests on 127.0.0.1.
SECRET_KEY = "crossgate-routing-tests-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = __name__
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, Any]] = {}
USE_TZ = True
USE_I18N = False


def links(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "links": reverse("links"),
            "article": reverse("article", args=[7]),
            "script_name": request.META["SCRIPT_NAME"],
            "path_info": request.META["PATH_INFO"],
        }
    )


urlpatterns: list[URLPattern] = [
    path("links", links, name="links"),
    path("articles/<int:number>", links, name="article"),
]
