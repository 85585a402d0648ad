"""Stage 0: the helpdesk's WSGI application, as `django-admin startproject` writes it.

`gunicorn demo_projects.django_helpdesk.wsgi:application`. Nothing here knows about ASGI; the
later stages import this very object.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_projects.django_helpdesk.settings")
os.environ.setdefault("HELPDESK_STAGE", "0")

application = get_wsgi_application()
