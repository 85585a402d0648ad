"""The FastAPI app the gunicorn tests serve through ASGIToWSGI.

``gunicorn tests.servers.fastapi_app:application``. The server runs in its own processes, so the
views prove what they must through the server log (``server_log``) and through files the test
creates (``gate``: a path the app waits for, across processes, where an in-process test would
use an event). No view asserts or measures a duration.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse

from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI
from tests.servers._rendezvous import GATE_TIMEOUT, server_log


async def wait_for_gate(gate: str | None) -> bool:
    """Wait until the test creates the file ``gate`` (True), at most ``GATE_TIMEOUT`` s."""
    if gate is None:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GATE_TIMEOUT
    path = Path(gate)
    while not path.exists():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    token = uuid.uuid4().hex
    # The tests read these lines: startup ran once in each worker process (after the fork,
    # under --preload), and shutdown ran when the worker exited.
    server_log(f"fastapi-startup pid={os.getpid()} token={token}")
    yield {"started_pid": os.getpid(), "token": token}
    server_log(f"fastapi-shutdown pid={os.getpid()} token={token}")


app = FastAPI(lifespan=lifespan)


@app.get("/", response_class=PlainTextResponse)
async def hello() -> str:
    return "hello from fastapi"


@app.get("/state")
async def state(request: Request) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "started_pid": request.state.started_pid,
        "token": request.state.token,
    }


@app.post("/echo")
async def echo(payload: dict[str, Any]) -> dict[str, Any]:
    return {"framework": "fastapi", "echo": payload}


@app.post("/upload")
async def upload(request: Request) -> dict[str, Any]:
    digest = hashlib.sha256()
    length = 0
    async for chunk in request.stream():
        digest.update(chunk)
        length += len(chunk)
    return {"length": length, "sha256": digest.hexdigest()}


@app.get("/sse")
async def sse(token: str, gate: str | None = None, count: int | None = None) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"data: tick 0\n\n"
            # The rest waits for the client to have the first event: a response held back
            # until the app finished would reach the client only once this gave up.
            if not await wait_for_gate(gate):
                yield b"data: gate-timeout\n\n"
                return
            number = 1
            while count is None or number < count:
                yield f"data: tick {number}\n\n".encode()
                number += 1
                await asyncio.sleep(0.02)
        finally:
            server_log(f"sse-closed token={token}")

    return StreamingResponse(events(), media_type="text/event-stream")


@app.get("/file")
async def file() -> FileResponse:
    # Starlette sends http.response.pathsend when the server offers it: ASGIToWSGI hands the
    # file to gunicorn's wsgi.file_wrapper, which gunicorn sends with sendfile().
    return FileResponse(Path(__file__), media_type="text/plain")


@app.post("/background")
async def background(token: str, gate: str, tasks: BackgroundTasks) -> dict[str, str]:
    async def work() -> None:
        released = await wait_for_gate(gate)
        server_log(f"background-{'done' if released else 'gave-up'} token={token}")

    tasks.add_task(work)
    return {"queued": token}


application = ASGIToWSGI(app)
