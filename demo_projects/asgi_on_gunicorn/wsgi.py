"""The WSGI entry point: ``gunicorn demo_projects.asgi_on_gunicorn.wsgi:application``.

The one crossgate-specific file of the demo: ``main.py`` is an ordinary FastAPI app.
``lifespan="on"`` makes a missing or failing lifespan a startup error instead of a quiet
fallback, since the API needs the store it opens.
"""

from __future__ import annotations

from crossgate import ASGIToWSGI
from demo_projects.asgi_on_gunicorn.main import app

__all__ = ["application"]

application = ASGIToWSGI(app, lifespan="on")
