"""Stage 1, "change the server, not the code": the stage 0 application under an ASGI server.

`uvicorn demo_projects.django_helpdesk.stage1:application` (or hypercorn, or granian). The views
are untouched: `WSGIToASGI` runs them in worker threads, streams the CSV export as the generator
yields it, and hands the attachment file to the server's `http.response.pathsend` when the server
offers it.
"""

from __future__ import annotations

import os

os.environ.setdefault("HELPDESK_STAGE", "1")

# The import comes after the stage is set: wsgi.py would otherwise claim stage 0.
from crossgate import WSGIToASGI
from demo_projects.django_helpdesk.wsgi import application as wsgi_application

application = WSGIToASGI(wsgi_application)
