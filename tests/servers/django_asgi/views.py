"""Async views: Django streams an async generator as it goes under ASGI (a sync iterator it
would first consume whole), which the SSE tests need."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt

from tests.servers import fastapi_app
from tests.servers._rendezvous import server_log
from tests.servers.fastapi_app import wait_for_gate


async def file(request: HttpRequest) -> FileResponse:
    # The same file as the FastAPI app's /file; Django streams it through ASGI in chunks.
    return FileResponse(Path(fastapi_app.__file__).open("rb"), content_type="text/plain")


@csrf_exempt
async def echo(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405)
    payload = json.loads(request.body)
    return JsonResponse({"framework": "django", "echo": payload, "pid": os.getpid()})


async def sse(request: HttpRequest) -> StreamingHttpResponse:
    token = request.GET["token"]
    gate = request.GET.get("gate")
    count = int(request.GET["count"]) if "count" in request.GET else None

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"data: tick 0\n\n"
            if not await wait_for_gate(gate):
                yield b"data: gate-timeout\n\n"
                return
            number = 1
            while count is None or number < count:
                yield f"data: tick {number}\n\n".encode()
                number += 1
                await asyncio.sleep(0.02)
        finally:
            # Django closes the generator (aclosing) when send() fails: the test reads this.
            server_log(f"sse-closed token={token}")

    return StreamingHttpResponse(events(), content_type="text/event-stream")
