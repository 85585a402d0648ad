"""Stage 2 or 3 (as `HELPDESK_STAGE` says) with a probe on the channel layer's `group_send`, for
the tests that check which event loop a comment is sent on.

Each `group_send` call writes one line to stderr (the server's log) before it does its work:
`loop-probe group=ticket-5 on_server_loop=True thread=MainThread`. `on_server_loop` says whether
the call runs on the loop the server ran lifespan startup on: what `crossgate.async_to_sync` in
the `post_save` receiver promises for a comment saved in a `WSGIToASGI` worker thread (the
legacy form) or in the thread where Django's async ORM runs its query (the API, the consumer).
asgiref's `async_to_sync` (`HELPDESK_ASYNC_TO_SYNC=asgiref`) makes a loop of its own in another
thread instead. The stage's application itself is untouched.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import threading
from typing import Any

from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer

from crossgate.types import ASGIReceive, ASGISend, Message

_server_loop: list[asyncio.AbstractEventLoop] = []


def _probe(original: Any) -> Any:
    async def group_send(self: Any, group: str, message: dict[str, Any]) -> None:
        on_server_loop = bool(_server_loop) and asyncio.get_running_loop() is _server_loop[0]
        thread = threading.current_thread().name.replace(" ", "_")
        print(
            f"loop-probe group={group} on_server_loop={on_server_loop} thread={thread}",
            file=sys.stderr,
            flush=True,
        )
        await original(self, group, message)

    return group_send


# Patched before the stage module is imported, the layer classes themselves: whichever the
# settings pick is probed.
for _layer in (InMemoryChannelLayer, RedisChannelLayer):
    _layer.group_send = _probe(_layer.group_send)  # type: ignore[method-assign]

_stage = os.environ.get("HELPDESK_STAGE", "2")
if _stage not in ("2", "3"):
    raise RuntimeError(f"the loop probe serves stage 2 or 3, not {_stage!r}")
_application = importlib.import_module(f"demo_projects.django_helpdesk.stage{_stage}").application


async def application(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    if scope["type"] == "lifespan" and not _server_loop:
        _server_loop.append(asyncio.get_running_loop())
    await _application(scope, receive, send)
