"""`new_routes_application()`: Django's own ASGI handler, serving only the new async API.

Stage 3 puts it first in a `crossgate.routing.Fallback`: it answers the API's paths and a 404
for every other one, and that 404 hands the request to the legacy application. This module
imports no model, so it can be imported before Django is set up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO, Any

import django
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.http import HttpResponseBase

API_URLCONF = "demo_projects.django_helpdesk.tickets.api_urls"


class NewRoutesHandler(ASGIHandler):
    """An `ASGIHandler` that resolves every request against `api_urls` alone.

    Django resolves a request against `request.urlconf` when it is set (`BaseHandler.
    resolve_request`), so the project's settings and middleware stay the same and only the
    routes change. Like every `ASGIHandler` it refuses the lifespan protocol (it raises for a
    `lifespan` scope): serve it behind a crossgate router, which answers lifespan itself.
    """

    def create_request(
        self, scope: Mapping[str, Any], body_file: IO[bytes]
    ) -> tuple[ASGIRequest, None] | tuple[None, HttpResponseBase]:
        created = super().create_request(scope, body_file)
        request = created[0]
        if request is not None:
            request.urlconf = API_URLCONF
        return created


def new_routes_application() -> NewRoutesHandler:
    """Set Django up (the helpdesk's settings unless `DJANGO_SETTINGS_MODULE` says otherwise)
    and return the handler of the new routes, as `django.core.asgi.get_asgi_application` does."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_projects.django_helpdesk.settings")
    django.setup(set_prefix=False)
    return NewRoutesHandler()
