"""gunicorn config for ``--preload``: the app is imported in the master, then each worker runs
the lifespan startup in its own process, right after the fork (the deployment recipe of the
ASGIToWSGI docs)."""

from __future__ import annotations

from typing import Any


def post_fork(server: Any, worker: Any) -> None:
    from tests.servers.fastapi_app import application

    application.startup()
