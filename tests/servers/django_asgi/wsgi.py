"""Django's own ASGI application, served by a WSGI server through ASGIToWSGI.

``gunicorn tests.servers.django_asgi.wsgi:application``. Django's ``ASGIHandler`` raises on the
lifespan scope; the adapter notices and serves it without lifespan, quietly.
"""

from __future__ import annotations

import os
from typing import cast

from django.core.asgi import get_asgi_application

from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from crossgate.types import ASGIApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.servers.django_asgi.settings")

# django-stubs types the handler's scope as dict and its messages as read-only Mappings, where
# crossgate's ASGIApp (like asgiref's) uses MutableMappings: the same protocol at runtime.
application = ASGIToWSGI(cast(ASGIApp, get_asgi_application()))
