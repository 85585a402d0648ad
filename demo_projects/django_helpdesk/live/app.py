"""What stages 2 and 3 share: the hub chosen by ``REDIS_URL``, and the protocol router.

``live_application(http)`` puts the live-updates websocket endpoint beside any HTTP app: the
legacy application in stage 2, the `crossgate.routing.Fallback` of stage 3.
"""

from __future__ import annotations

import logging
import os

from crossgate.routing import App, ProtocolRouter
from demo_projects.django_helpdesk.live.endpoint import LiveUpdates
from demo_projects.django_helpdesk.live.hub import Hub
from demo_projects.django_helpdesk.live.signals import connect_comment_signal

__all__ = ["hub_from_env", "live_application"]

_log = logging.getLogger("demo_projects.django_helpdesk.live")


def hub_from_env() -> Hub:
    """A `RedisHub` when ``REDIS_URL`` is set (several workers), the in-process `Hub` otherwise.

    Raises:
        ValueError: ``REDIS_URL`` is set but is not a URL redis-py understands.
    """
    url = os.environ.get("REDIS_URL")
    if not url:
        return Hub()
    # Imported only when used: the default setup needs no Redis client installed.
    from demo_projects.django_helpdesk.live.redis_hub import RedisHub

    return RedisHub(url)


def live_application(http: App, hub: Hub | None = None) -> ProtocolRouter:
    """Route websockets to the live-updates endpoint and HTTP to ``http``.

    Connects the comment ``post_save`` receiver to ``hub`` (default: `hub_from_env`). The
    router answers the server's lifespan itself: it starts the hub at startup and stops it
    (closing its websockets and Redis connections) at shutdown, and fans lifespan out to
    ``http`` (an app that does not support lifespan, such as Django's ``ASGIHandler``, is
    skipped).

    Raises:
        ValueError: ``REDIS_URL`` is set but is not a URL redis-py understands.
    """
    if hub is None:
        hub = hub_from_env()
    connect_comment_signal(hub)
    _log.info("live updates through %r", hub)
    return ProtocolRouter(
        {"http": http, "websocket": LiveUpdates(hub)},
        on_startup=[hub.start],
        on_shutdown=[hub.stop],
    )
