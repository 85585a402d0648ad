"""Stage 2, "add websockets beside it": the stage 1 application plus live updates.

`uvicorn demo_projects.django_helpdesk.stage2:application` (add `--workers 2` and set
`REDIS_URL` to share the updates between processes). `crossgate.routing.ProtocolRouter` sends
HTTP to the legacy application, still in `WSGIToASGI`, and websockets to the live-updates
endpoint; a comment saved by the legacy, untouched comment view reaches every open page of its
ticket through `crossgate.async_to_sync`, on the server's event loop.
"""

from __future__ import annotations

import os

os.environ.setdefault("HELPDESK_STAGE", "2")

# Imported after the stage is set: stage1.py and wsgi.py would otherwise claim theirs.
from demo_projects.django_helpdesk.live.app import live_application
from demo_projects.django_helpdesk.stage1 import application as legacy

application = live_application(legacy)
