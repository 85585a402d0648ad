"""The ASGI entry point: ``uvicorn demo_projects.flask_legacy.asgi:application``.

This is the only crossgate-specific file of the demo; ``app.py`` is an ordinary Flask app that
would run unchanged under gunicorn or ``flask run``.
"""

from __future__ import annotations

from crossgate import WSGIToASGI
from demo_projects.flask_legacy.app import app

__all__ = ["application"]

application = WSGIToASGI(app)
