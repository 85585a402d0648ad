"""The new code: an ordinary FastAPI app, written for an ASGI server.

Nothing here knows it ends up behind gunicorn's sync workers; ``wsgi.py`` does that with
`crossgate.ASGIToWSGI`. The app uses what ASGI apps use and WSGI apps cannot have:

* a lifespan that opens the store and records when (and in which process) it started;
* a JSON API: named counters, shared by every worker through SQLite (``store.py``);
* server-sent events: ``/api/counters/{name}/events`` streams the counter's value each time
  it changes, so a second browser tab (or ``curl``) sees every click live;
* a background task: ``POST /api/jobs`` answers ``202`` at once, and the job runs after the
  response is complete; a later ``GET /api/jobs/{id}`` shows it done.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import BackgroundTasks, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field

from demo_projects.asgi_on_gunicorn.store import Job, Store

__all__ = ["DATA_DIR_VARIABLE", "JobRequest", "app"]

# Where the SQLite file lives; the default is a directory of the system's temporary area.
DATA_DIR_VARIABLE = "ASGI_DEMO_DATA_DIR"

# A stream holds a whole sync worker for as long as it lasts, and gunicorn kills a worker that
# has not checked in for `--timeout` seconds (30 by default): every stream ends well before.
STREAM_LIMIT = 20.0
# How often a stream looks at its counter, and how often it sends a comment line when nothing
# changed. A WSGI server only learns that the client left when a write fails, so the comment
# also frees the worker soon after a reader goes away.
POLL_INTERVAL = 0.05
HEARTBEAT_INTERVAL = 1.0

log = logging.getLogger("demo_projects.asgi_on_gunicorn")

# The process that imported this module. With gunicorn's `--preload` that is the master, which
# then forks the workers: `/api/info` shows it beside the worker's own PID.
IMPORTED_PID = os.getpid()

CounterName = Annotated[str, PathParam(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]


def data_dir() -> Path:
    configured = os.environ.get(DATA_DIR_VARIABLE)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / "crossgate-asgi-on-gunicorn"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    """Open the store; runs once in each worker process (``gunicorn_conf.post_fork``)."""
    store = Store(data_dir() / "demo.sqlite3")
    store.create()
    log.info("lifespan startup in worker pid=%d", os.getpid())
    yield {
        "store": store,
        "started_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "started_pid": os.getpid(),
    }
    log.info("lifespan shutdown in worker pid=%d", os.getpid())


app = FastAPI(title="New ASGI code on gunicorn", lifespan=lifespan)


def store_of(request: Request) -> Store:
    store: Store = request.state.store
    return store


@app.get("/", response_class=HTMLResponse)
async def home() -> str:
    return HOME_PAGE


@app.get("/api/info")
async def info(request: Request) -> dict[str, Any]:
    """Which worker answered, which process imported the app, and what the lifespan set up."""
    return {
        "pid": os.getpid(),
        "imported_pid": IMPORTED_PID,
        "started_pid": request.state.started_pid,
        "started_at": request.state.started_at,
        "server": request.scope.get("server"),
        "http_version": request.scope["http_version"],
    }


@app.get("/api/counters/{name}")
async def read_counter(name: CounterName, request: Request) -> dict[str, Any]:
    return {"name": name, "value": store_of(request).counter(name)}


@app.post("/api/counters/{name}")
async def bump_counter(name: CounterName, request: Request) -> dict[str, Any]:
    return {"name": name, "value": store_of(request).increment(name), "pid": os.getpid()}


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    """One server-sent event (HTML Living Standard, "Server-sent events")."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


async def counter_events(
    request: Request, store: Store, name: str, count: int
) -> AsyncIterator[str]:
    """The counter's value now, then each new value, ``count`` events in all, then ``end``.

    Between events it asks whether the client is still there: the ASGI server says so
    (`http.disconnect`) as soon as it knows, which is sooner than the next write would fail.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_LIMIT
    next_heartbeat = loop.time() + HEARTBEAT_INTERVAL
    sent = 0
    last: int | None = None
    outcome = "the client left"
    try:
        while sent < count:
            value = store.counter(name)
            if value != last:
                last = value
                sent += 1
                yield sse("counter", {"name": name, "value": value, "pid": os.getpid()}, sent)
                continue
            now = loop.time()
            if now >= deadline:
                outcome = "the time limit"
                yield sse("timeout", {"after_seconds": STREAM_LIMIT})
                return
            if now >= next_heartbeat:
                next_heartbeat = now + HEARTBEAT_INTERVAL
                yield ": keep-alive\n\n"
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL_INTERVAL)
        outcome = "the last event"
        yield sse("end", {"events": sent})
    finally:
        log.info("counter stream %r ended after %d events: %s", name, sent, outcome)


@app.get("/api/counters/{name}/events")
async def watch_counter(
    name: CounterName, request: Request, count: Annotated[int, Query(ge=1, le=100)] = 10
) -> StreamingResponse:
    return StreamingResponse(
        counter_events(request, store_of(request), name, count),
        media_type="text/event-stream",
        # A proxy that buffers would hold the events back; nginx honours this header.
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


class JobRequest(BaseModel):
    label: str = Field(min_length=1, max_length=80)
    seconds: float = Field(default=0.5, ge=0, le=3)


async def run_job(store: Store, job_id: int, seconds: float) -> None:
    """The slow part, after the response: `ASGIToWSGI` keeps the app running for it."""
    store.set_status(job_id, "running")
    await asyncio.sleep(seconds)
    store.set_status(job_id, "done")
    log.info("job %d done in worker pid=%d", job_id, os.getpid())


@app.post("/api/jobs", status_code=202)
async def start_job(job: JobRequest, request: Request, background: BackgroundTasks) -> Job:
    store = store_of(request)
    accepted = store.add_job(job.label, job.seconds)
    background.add_task(run_job, store, accepted["id"], job.seconds)
    return accepted


@app.get("/api/jobs/{job_id}")
async def read_job(job_id: int, request: Request) -> Job:
    found = store_of(request).job(job_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"no job {job_id}")
    return found


HOME_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>FastAPI on gunicorn</title>
  <style>
    body { font-family: system-ui, sans-serif; margin: 2rem; max-width: 48rem; line-height: 1.5; }
    h1 { color: rgb(0, 137, 123); }
    pre { background: rgb(238, 238, 238); padding: 0.5rem; min-height: 1.5rem; }
    button { margin-right: 0.5rem; }
  </style>
</head>
<body>
  <h1>New ASGI code on a WSGI-only platform</h1>
  <p>
    This FastAPI app runs in gunicorn's sync workers through <code>crossgate.ASGIToWSGI</code>.
    <a href="/api/info">/api/info</a> names the worker that answered and when its lifespan ran.
  </p>
  <h2>A counter, live</h2>
  <p>
    <button id="watch">Watch live (server-sent events)</button>
    <button id="bump">+1</button>
    value: <strong id="value">?</strong>
  </p>
  <pre id="events"></pre>
  <h2>A background job</h2>
  <p><button id="job">Start a 2-second job</button></p>
  <pre id="job-log"></pre>
  <script>
    const events = document.getElementById("events");
    const note = (target, text) => { target.textContent += text + "\\n"; };
    document.getElementById("watch").onclick = () => {
      const source = new EventSource("/api/counters/clicks/events?count=10");
      source.addEventListener("counter", (event) => {
        const data = JSON.parse(event.data);
        document.getElementById("value").textContent = data.value;
        note(events, `value ${data.value} (from worker ${data.pid})`);
      });
      // The stream ends after ten events; without close() EventSource would reconnect.
      for (const name of ["end", "timeout"]) {
        source.addEventListener(name, () => { note(events, `stream ${name}`); source.close(); });
      }
    };
    document.getElementById("bump").onclick = () => {
      fetch("/api/counters/clicks", {method: "POST"});
    };
    document.getElementById("job").onclick = async () => {
      const jobLog = document.getElementById("job-log");
      const response = await fetch("/api/jobs", {
        method: "POST",
        headers: {"content-type": "application/json"},
        body: JSON.stringify({label: "from the page", seconds: 2}),
      });
      const job = await response.json();
      note(jobLog, `job ${job.id}: ${job.status} (answered ${response.status})`);
      // One poll at a time, the next one after the answer: with setInterval, answers slower
      // than the interval piled up and each said "done" once the job was.
      const poll = async () => {
        const current = await (await fetch(`/api/jobs/${job.id}`)).json();
        if (current.status === "done") {
          note(jobLog, `job ${job.id}: done by worker ${current.finished_by}`);
        } else {
          setTimeout(poll, 500);
        }
      };
      setTimeout(poll, 500);
    };
  </script>
</body>
</html>
"""
