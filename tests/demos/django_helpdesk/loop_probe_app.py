"""Stage 2 or 3 (as `HELPDESK_STAGE` says) with a probe on the hub's `publish`, for the tests
that check which event loop a comment is published on.

Each `Hub.publish` call writes one line to stderr (the server's log) before it does its work:
`loop-probe ticket=5 on_hub_loop=True thread=MainThread`. `on_hub_loop` says whether the call
runs on the loop the hub was started on at lifespan startup, the server's: what
`crossgate.async_to_sync` in the `post_save` receiver promises for a comment saved in a
`WSGIToASGI` worker thread (stage 2's legacy form) or in the thread where Django's async ORM runs
its query (stage 3's API). The stage's application itself is untouched.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

from crossgate.routing import ProtocolRouter
from demo_projects.django_helpdesk.live.hub import Hub

_publish = Hub.publish


async def _probed_publish(self: Hub, ticket_id: int, message: Mapping[str, Any]) -> None:
    on_hub_loop = asyncio.get_running_loop() is self.loop
    thread = threading.current_thread().name
    print(
        f"loop-probe ticket={ticket_id} on_hub_loop={on_hub_loop} thread={thread}",
        file=sys.stderr,
        flush=True,
    )
    await _publish(self, ticket_id, message)


# Patched before the stage module is imported, so the hub it makes is probed from the start.
Hub.publish = _probed_publish  # type: ignore[method-assign]  # the probe, on purpose

_stage = os.environ.get("HELPDESK_STAGE", "2")
if _stage not in ("2", "3"):
    raise RuntimeError(f"the loop probe serves stage 2 or 3, not {_stage!r}")
application: ProtocolRouter = importlib.import_module(
    f"demo_projects.django_helpdesk.stage{_stage}"
).application
