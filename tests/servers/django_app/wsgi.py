"""The Django project's WSGI application, as ``django-admin startproject`` would write it."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.servers.django_app.settings")

application = get_wsgi_application()
