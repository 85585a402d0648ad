"""ASGI entry point: the Django WSGI application served through crossgate in spool mode.

``uvicorn tests.servers.django_app.asgi_crossgate_spool:application``. Spool mode reads the whole
body first, so it can give Django the ``CONTENT_LENGTH`` of a chunked upload.
"""

from __future__ import annotations

from crossgate import WSGIToASGI
from tests.servers.django_app.wsgi import application as wsgi_application

application = WSGIToASGI(wsgi_application, request_body="spool")
