"""The new ASGI entry point: a Starlette app, with the legacy Flask app mounted at ``/legacy``.

```console
uvicorn demo_projects.flask_mount.app:application --host 127.0.0.1 --port 8000
```

One uvicorn process serves both. `crossgate.routing.PathRouter` sends ``/legacy`` and
everything below it to Flask (wrapped in `crossgate.WSGIToASGI`, with ``SCRIPT_NAME='/legacy'``)
and every other path, websockets included, to Starlette. The router answers the server's
lifespan protocol and runs Starlette's lifespan, so the state it sets up reaches the API.

The one line of configuration the mount needs on the Flask side is ``APPLICATION_ROOT``:
Flask builds URLs from ``SCRIPT_NAME`` by itself, but takes the session cookie's ``Path`` from
its configuration, never from the request.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from crossgate.routing import Mount, PathRouter
from demo_projects.flask_mount.legacy import create_app

__all__ = ["LEGACY_PREFIX", "application", "legacy_app", "new_app"]

LEGACY_PREFIX = "/legacy"

# Flask derives every URL from SCRIPT_NAME, but the session cookie's Path from
# APPLICATION_ROOT (or SESSION_COOKIE_PATH); without this the cookie would be sent to the
# Starlette app too (Path=/), where a session cookie of its own would collide with it.
legacy_app = create_app({"APPLICATION_ROOT": LEGACY_PREFIX})

HOME_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>New Starlette app</title>
  <style>
    body { font-family: system-ui, sans-serif; margin: 2rem; max-width: 48rem; line-height: 1.5; }
    h1 { color: rgb(63, 81, 181); }
    #echo-log { font-family: monospace; background: rgb(238, 238, 238); padding: 0.5rem; }
  </style>
</head>
<body>
  <h1>The new app</h1>
  <p>
    This page, <a href="/api/status">/api/status</a> and the websocket below are served by a new
    Starlette app. Everything under <code>/legacy</code> is the old Flask app, mounted with
    <code>crossgate.PathRouter</code>, in this same process (<span id="pid">__PID__</span>).
  </p>
  <ul>
    <li><a id="legacy-link" href="/legacy/">Open the legacy Flask app</a></li>
    <li><a href="/legacy/preferences">Set your preferences in the legacy app</a></li>
    <li><a href="/api/status">The new JSON API</a> (shows the state set up at startup)</li>
  </ul>
  <h2>Websocket echo</h2>
  <form id="echo-form">
    <input id="echo-input" value="hello" aria-label="message">
    <button type="submit">Send</button>
    <span id="echo-status">connecting</span>
  </form>
  <pre id="echo-log"></pre>
  <script>
    const log = document.getElementById("echo-log");
    const status = document.getElementById("echo-status");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/ws/echo`);
    socket.onopen = () => { status.textContent = "open"; };
    socket.onclose = () => { status.textContent = "closed"; };
    socket.onmessage = (event) => {
      const line = document.createElement("div");
      line.className = "echo-line";
      line.textContent = event.data;
      log.appendChild(line);
    };
    document.getElementById("echo-form").onsubmit = (event) => {
      event.preventDefault();
      socket.send(document.getElementById("echo-input").value);
    };
  </script>
</body>
</html>
"""


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    """Set up what the API shows; runs because the router fans the lifespan out to Starlette."""
    yield {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "pid": os.getpid()}


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(HOME_PAGE.replace("__PID__", str(os.getpid())))


async def status(request: Request) -> JSONResponse:
    # request.state holds a copy of what the lifespan yielded: an AttributeError (a 500) here
    # would mean the lifespan never ran.
    return JSONResponse(
        {
            "app": "starlette",
            "pid": os.getpid(),
            "started_at": request.state.started_at,
            "lifespan_pid": request.state.pid,
            "legacy_mount": LEGACY_PREFIX,
        }
    )


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"type": "hello", "pid": os.getpid()})
    async for text in websocket.iter_text():
        await websocket.send_text(f"echo: {text}")


new_app = Starlette(
    routes=[
        Route("/", home),
        Route("/api/status", status),
        WebSocketRoute("/ws/echo", echo),
    ],
    lifespan=lifespan,
)

application = PathRouter([Mount(LEGACY_PREFIX, legacy_app)], default=new_app)
