"""gunicorn settings for the demo: ``gunicorn -c demo_projects/asgi_on_gunicorn/gunicorn_conf.py``.

Command-line options override these (the tests bind port 0 that way).
"""

from __future__ import annotations

import logging
from typing import Any

wsgi_app = "demo_projects.asgi_on_gunicorn.wsgi:application"
bind = "127.0.0.1:8000"
worker_class = "sync"
workers = 2
# Import the app once in the master, then fork: the workers share its memory pages.
preload_app = True
# Each stream holds a worker; main.STREAM_LIMIT keeps every stream well below this.
timeout = 30
accesslog = "-"
errorlog = "-"


def post_fork(server: Any, worker: Any) -> None:
    """Run in each worker right after the fork: wire up logging, then run lifespan startup.

    With ``preload_app`` the master imported the app, but the event loops and the lifespan
    must belong to each worker: `ASGIToWSGI.startup` runs the lifespan here, so a broken
    startup shows at boot ("Worker failed to boot") rather than on the first request.
    """
    from demo_projects.asgi_on_gunicorn.wsgi import application

    # The app's and crossgate's log lines go where gunicorn's own go.
    for name in ("demo_projects.asgi_on_gunicorn", "crossgate"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        for handler in server.log.error_log.handlers:
            logger.addHandler(handler)
    application.startup()
