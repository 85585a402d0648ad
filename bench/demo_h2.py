"""The helpdesk demo over HTTP/1.1 and HTTP/2, loaded with h2load (Debian's nghttp2-client).

``python -m bench.demo_h2 [--quick]`` prints the table. Columns:

- ``crossgate``: stage 1, the legacy Django application in `WSGIToASGI`, under hypercorn (one
  process), over HTTP/1.1 (``h2load --h1``) or cleartext HTTP/2 (h2c, prior knowledge) as the
  row says;
- ``native``: stage 0, the same application under gunicorn (2 sync workers, the demo's stage 0
  command); HTTP/1.1 only, so ``-`` on the HTTP/2 rows.

Both servers run exactly the commands of the demo's runner (access logs on). Each row runs in a
fresh child process (``--child ROW``) that starts the server on 127.0.0.1 port 0, warms it up
with one request, runs h2load bounded by its request count AND a time limit, and stops the
server by its PID. The database is prepared once per run in a temporary data directory.

What is fair to compare, and why the rows are what they are:

- The ticket page: HTTP/1.1 with 8 connections against HTTP/2 with 8 streams on one
  connection, the same concurrency; the page is CPU-bound, so HTTP/2 wins nothing here but a
  single connection.
- ``/slow/?seconds=3`` (a sync view that sleeps): 24 requests as 24 streams on ONE HTTP/2
  connection overlap and finish in about 3 s. On one HTTP/1.1 connection without pipelining they
  can only go one after the other, 3 s each, so that row is bounded to 4 requests (12 s) and
  compared as a rate, which does not depend on the count. HTTP/1.1 gets the same overlap with
  24 connections; that row is there too (gunicorn's 2 sync workers serve 2 at a time: measured
  in the full run only, since 24 requests then take 36 s).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import Row, Table, text_table
from bench.subproc import ROOT, cell, emit, progress, run_child, stop_process
from demo_projects.django_helpdesk.__main__ import ServeOptions, server_command

__all__ = ["ROWS", "Load", "logged_statuses", "parse_h2load", "section"]

TITLE = "demo-h2: the helpdesk demo over HTTP/1.1 and HTTP/2 (h2load)"
HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
PREPARE_TIMEOUT = 120.0
# On top of a row's own time limit: server start-up, warm-up and shut-down.
GRACE = 60.0
SLOW_SECONDS = 3
TICKET_PAGE = "/tickets/1/"
SLOW_PATH = f"/slow/?seconds={SLOW_SECONDS}"
# The HTTP/2 slow row meets its target when the 24 streams plainly overlapped: serially they
# would manage 1/3 request per second, overlapping fully 8.
SLOW_H2_TARGET = 6.0

_LISTENING = re.compile(r"(?:Running on|Listening at:) http://127\.0\.0\.1:(\d+)")
_FINISHED = re.compile(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)


@dataclass(frozen=True)
class Load:
    """One h2load run: where, how many connections and streams, how many requests, how long."""

    label: str
    path: str
    h1: bool
    clients: int
    streams: int
    requests: int
    quick_requests: int
    limit: float  # seconds h2load may take before it is killed
    native: bool = True  # whether the stage 0 (gunicorn) column applies
    native_in_quick: bool = True


ROWS: dict[str, Load] = {
    "page-h1": Load(
        "ticket page, HTTP/1.1, 8 connections (req/s)",
        TICKET_PAGE,
        h1=True,
        clients=8,
        streams=1,
        requests=4000,
        quick_requests=300,
        limit=60.0,
    ),
    "page-h2": Load(
        "ticket page, HTTP/2 h2c, 8 streams on 1 connection (req/s)",
        TICKET_PAGE,
        h1=False,
        clients=1,
        streams=8,
        # hypercorn closes a connection after 1,000 requests (its keep_alive_max_requests):
        # one connection carries fewer, or h2load's remaining requests all fail.
        requests=960,
        quick_requests=300,
        limit=60.0,
        native=False,
    ),
    "slow-h2": Load(
        f"/slow/ ({SLOW_SECONDS} s) x24, HTTP/2, 24 streams on 1 connection (req/s)",
        SLOW_PATH,
        h1=False,
        clients=1,
        streams=24,
        requests=24,
        quick_requests=24,
        limit=30.0,
        native=False,
    ),
    "slow-h1-serial": Load(
        f"/slow/ ({SLOW_SECONDS} s) x4, HTTP/1.1, 1 connection (req/s)",
        SLOW_PATH,
        h1=True,
        clients=1,
        streams=1,
        requests=4,
        quick_requests=4,
        limit=30.0,
    ),
    "slow-h1-24conn": Load(
        f"/slow/ ({SLOW_SECONDS} s) x24, HTTP/1.1, 24 connections (req/s)",
        SLOW_PATH,
        h1=True,
        clients=24,
        streams=1,
        requests=24,
        quick_requests=24,
        limit=60.0,
        native_in_quick=False,
    ),
}


def parse_h2load(text: str) -> dict[str, float]:
    """The figures of an h2load run: ``rate`` (req/s), ``seconds``, ``done``, ``succeeded``,
    ``errored`` (connection errors and timeouts).

    Raises:
        ValueError: the output has no summary (h2load failed before it measured anything).
    """
    finished = _FINISHED.search(text)
    requests = _REQUESTS.search(text)
    if finished is None or requests is None:
        raise ValueError("h2load printed no summary")
    seconds = float(finished.group(1)) / (1000.0 if finished.group(2) == "ms" else 1.0)
    _total, _started, done, succeeded, _failed, errored, timeout = map(int, requests.groups())
    return {
        "rate": float(finished.group(3)),
        "seconds": seconds,
        "done": float(done),
        "succeeded": float(succeeded),
        "errored": float(errored + timeout),
    }


def logged_statuses(log: str, path: str) -> list[int]:
    """The statuses the server's access log shows for GETs of ``path`` (query string ignored:
    hypercorn logs the path alone). Matches both servers' formats:
    ``"GET /tickets/1/ 1.1" 200`` (hypercorn) and ``"GET /tickets/1/ HTTP/1.1" 200``
    (gunicorn)."""
    bare = re.escape(path.partition("?")[0])
    return [int(code) for code in re.findall(rf'"GET {bare}(?:\?[^ "]*)? [^"]*" (\d{{3}}) ', log)]


# -- the child: one server, one h2load run ------------------------------------------------------


def _start(stage: int, data_dir: str, log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    server = "hypercorn" if stage == 1 else "gunicorn"
    options = ServeOptions(stage=stage, server=server, http2=stage == 1, port=0)
    env = dict(os.environ, HELPDESK_DATA_DIR=data_dir, HELPDESK_STAGE=str(stage))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            server_command(options, python=sys.executable),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server} exited with status {proc.returncode}")
        found = _LISTENING.search(log_path.read_text(errors="replace"))
        if found is not None:
            port = int(found.group(1))
            if _get(port, TICKET_PAGE) == 200:  # ready, and the page is warm
                return proc, port
        time.sleep(0.1)
    stop_process(proc, STOP_TIMEOUT)
    raise RuntimeError(f"{server} was not answering after {READY_TIMEOUT:.0f} s")


def _get(port: int, path: str) -> int | None:
    connection = http.client.HTTPConnection(HOST, port, timeout=5.0)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def _h2load(port: int, load: Load, requests: int) -> dict[str, float]:
    command = [
        "h2load",
        *("-n", str(requests), "-c", str(load.clients), "-m", str(load.streams)),
        *(("--h1",) if load.h1 else ()),
        f"http://{HOST}:{port}{load.path}",
    ]
    # Bounded twice: by the request count, and by the limit (h2load is killed past it).
    proc = subprocess.run(command, capture_output=True, text=True, timeout=load.limit, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"h2load failed: {(proc.stderr or proc.stdout).strip()[-80:]}")
    return parse_h2load(proc.stdout)


def _measure(row: str, stage: int, data_dir: str, quick: bool) -> dict[str, Any]:
    load = ROWS[row]
    requests = load.quick_requests if quick else load.requests
    with tempfile.TemporaryDirectory(prefix="demo-h2-") as scratch:
        log_path = Path(scratch) / "server.log"
        try:
            proc, port = _start(stage, data_dir, log_path)
        except RuntimeError as exc:
            return {"error": str(exc)[:60]}
        try:
            figures = _h2load(port, load, requests)
        except subprocess.TimeoutExpired:
            return {"error": "timeout"}
        except (RuntimeError, ValueError) as exc:
            return {"error": str(exc)[:60]}
        finally:
            stop_process(proc, STOP_TIMEOUT)
        statuses = logged_statuses(log_path.read_text(errors="replace"), load.path)
    # Every request must have been answered, and answered 200. The statuses come from the
    # server's access log: h2load 1.52 counts hypercorn's HTTP/1.1 responses as failed because
    # h11 sends an empty reason phrase ("HTTP/1.1 200 "), which RFC 9112 section 4 allows but
    # after which h2load never learns the status.
    # Not parsing those status lines, h2load may also close a connection with its last
    # request still in flight: hypercorn logs such a request with "-" for a status. At most one
    # per connection is h2load's doing; any other status, or more of them, is an error.
    if figures["errored"] or figures["done"] != requests:
        return {"error": f"{requests - figures['done']:.0f} of {requests} unanswered"}
    bad = [status for status in statuses if status != 200]
    if bad or len(statuses) < requests - (load.clients if load.h1 else 0):
        return {"error": f"statuses {sorted(set(bad))}, {len(statuses)} logged"}
    return {"value": figures["rate"], **figures}


# -- the parent: one child per cell -------------------------------------------------------------


def _prepare(data_dir: str) -> str | None:
    """Migrate and seed the demo database; the reason when that fails."""
    env = dict(os.environ, HELPDESK_DATA_DIR=data_dir)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "demo_projects.django_helpdesk", "prepare"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=PREPARE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "prepare timed out"
    if proc.returncode != 0:
        return f"prepare failed: {proc.stderr.strip()[-60:]}"
    return None


def _cell(row: str, stage: int, data_dir: str, quick: bool) -> dict[str, Any]:
    args = ["--child", row, "--stage", str(stage), "--data-dir", data_dir]
    if quick:
        args.append("--quick")
    return run_child("bench.demo_h2", args, ROWS[row].limit + GRACE)


def section(quick: bool) -> Table:
    columns = ("crossgate", "native")
    notes = [
        "crossgate: stage 1 (the Django app in WSGIToASGI) under hypercorn, 1 process; "
        "native: stage 0 under gunicorn, 2 sync workers; both with the demo's own commands, "
        "access logs on; '-': the row does not apply (gunicorn has no HTTP/2)",
        "h2load -n N -c C -m M; HTTP/2 rows are cleartext h2c with prior knowledge",
        f"HTTP/1.1 on one connection is serial: that /slow/ row is bounded to 4 requests "
        f"({4 * SLOW_SECONDS} s); rates compare regardless of the count",
    ]
    if quick:
        notes.append("quick run: fewer page requests; gunicorn skipped on the 24-connection row")
    if shutil.which("h2load") is None:
        missing = [Row(load.label, "rate", {"crossgate": "no h2load"}) for load in ROWS.values()]
        return Table(TITLE, columns, ("native",), missing, notes)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="demo-h2-data-") as data_dir:
        failure = _prepare(data_dir)
        for key, load in ROWS.items():
            progress(f"demo-h2: {key}")
            cells: dict[str, float | str] = {}
            if failure is not None:
                cells["crossgate"] = failure[:40]
            else:
                cells["crossgate"] = cell(_cell(key, 1, data_dir, quick))
                if load.native and (load.native_in_quick or not quick):
                    cells["native"] = cell(_cell(key, 0, data_dir, quick))
            row = Row(load.label, "rate", cells)
            if key == "slow-h2":
                row.target = f">= {SLOW_H2_TARGET:g} req/s (serial: {1 / SLOW_SECONDS:.2f})"
                rate = row.number("crossgate")
                row.met = None if rate is None else rate >= SLOW_H2_TARGET
            rows.append(row)
    return Table(TITLE, columns, ("native",), rows, notes)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.demo_h2", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests per row")
    parser.add_argument("--child", choices=sorted(ROWS), help=argparse.SUPPRESS)
    parser.add_argument("--stage", type=int, choices=(0, 1), default=1, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if not args.data_dir:
            parser.error("--child needs --data-dir")
        emit(_measure(args.child, args.stage, args.data_dir, args.quick), hard_exit=False)
        return
    print(text_table(section(args.quick)))


if __name__ == "__main__":
    main()
