"""Stage 1 with a probe that logs how each HTTP response went out, for the attachment tests.

After each request it writes one line to stderr (the server's log):
`probe path=/tickets/2/attachment/ offered=http.response.pathsend sent=http.response.start,
http.response.pathsend`, where `offered` lists the scope's `extensions` and `sent` the message
types the application sent (`type*N` for N in a row). The application itself is stage 1's,
untouched.
"""

from __future__ import annotations

import sys

from crossgate.types import ASGIReceive, ASGISend, Message
from demo_projects.django_helpdesk.stage1 import application as stage1


def summary(types: list[str]) -> str:
    """`a,b*3,c` for the types `[a, b, b, b, c]`."""
    runs: list[tuple[str, int]] = []
    for kind in types:
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1] + 1)
        else:
            runs.append((kind, 1))
    return ",".join(kind if count == 1 else f"{kind}*{count}" for kind, count in runs)


async def application(scope: Message, receive: ASGIReceive, send: ASGISend) -> None:
    """Stage 1's application, with each HTTP response's message types logged."""
    if scope["type"] != "http":
        await stage1(scope, receive, send)
        return
    types: list[str] = []

    async def probed(message: Message) -> None:
        types.append(message["type"])
        await send(message)

    try:
        await stage1(scope, receive, probed)
    finally:
        offered = ",".join(sorted(scope.get("extensions") or {}))
        print(
            f"probe path={scope['path']} offered={offered} sent={summary(types)}",
            file=sys.stderr,
            flush=True,
        )
