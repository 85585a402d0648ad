"""Stage 2, "add websockets beside it": the stage 1 application plus Channels for websockets.

`uvicorn demo_projects.django_helpdesk.stage2:application` (add `--workers 2` and set
`REDIS_URL` to share the updates between processes through `channels_redis`), or
`daphne demo_projects.django_helpdesk.stage2:application`. `crossgate.routing.ProtocolRouter`,
in the place of Channels' `ProtocolTypeRouter`, sends HTTP to the legacy application, still in
`WSGIToASGI`, and websockets to a Channels consumer behind `AllowedHostsOriginValidator` and
`AuthMiddlewareStack`; a comment saved by the legacy, untouched comment view reaches every open
page of its ticket through `async_to_sync(channel_layer.group_send)`.
"""

from __future__ import annotations

import os

os.environ.setdefault("HELPDESK_STAGE", "2")

# Imported after the stage is set: stage1.py and wsgi.py would otherwise claim theirs.
from demo_projects.django_helpdesk.live.app import live_application
from demo_projects.django_helpdesk.stage1 import application as legacy

application = live_application(legacy)
