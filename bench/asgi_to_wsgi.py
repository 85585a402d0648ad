"""ASGIToWSGI: an ASGI app inside a WSGI server, beside a2wsgi and the native WSGI app.

``python -m bench.asgi_to_wsgi [--quick]`` prints the table. In-process figures come from a
fake WSGI server calling each contender directly (a fresh child process per figure, see
``--child``); memory figures from the kernel's peak-RSS mark around one big request; server
figures from gunicorn (sync workers, 2 processes) loaded with wrk on 127.0.0.1.

Each in-process figure is the best of several timed blocks: the least disturbed one on a shared
machine. crossgate is measured in inline mode (the row's ``crossgate`` column) and, in rows
marked so, in shared mode.
"""

from __future__ import annotations

import argparse
import gc
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.types import WSGIApplication

from bench import apps, server
from bench.a2w_apps import CHUNK, CONTENDERS, build, download_asgi, download_wsgi
from bench.harness import ASGIApp
from bench.memory import reset_peak, status_kib
from bench.report import Row, Table, text_table
from bench.subproc import ROOT, Cell, cell, emit, progress, run_child, stop_process

__all__ = ["section"]

KIB = 1024
MIB = 1024 * KIB
POST_SIZE = 10 * MIB
COLUMNS = ("native", "crossgate", "a2wsgi")
RATIOS = ("native", "a2wsgi")
# Bounds on every loop, in count as well as in time.
MAX_CALLS = 2_000_000
GRACE = 60.0
HOST = "127.0.0.1"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Settings:
    seconds: float  # in-process time box per figure
    mib: int  # size of the big upload and download
    wrk_seconds: float
    wrk_warmup: float
    wrk_rounds: int  # rounds in which the server contenders take turns (see _server_rows)


FULL = Settings(seconds=2.0, mib=256, wrk_seconds=2, wrk_warmup=1, wrk_rounds=15)
QUICK = Settings(seconds=0.3, mib=16, wrk_seconds=1, wrk_warmup=0.5, wrk_rounds=1)


# -- the fake WSGI server --------------------------------------------------------------------


class Body:
    """``wsgi.input`` for ``size`` bytes, handed out as fresh copies, as off a socket."""

    __slots__ = ("_left", "_template")

    def __init__(self, size: int) -> None:
        self._left = size
        self._template = bytearray(b"u" * CHUNK)

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        self._left -= size
        if size <= CHUNK:
            return bytes(self._template[:size])
        return bytes(size)


class BenchError(Exception):
    """A contender answered something other than the expected response."""


def _environ(method: str, size: int, query: str = "") -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": query,
        "SERVER_NAME": HOST,
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": HOST,
        "REMOTE_PORT": "50000",
        "RAW_URI": "/" + ("?" + query if query else ""),
        "HTTP_HOST": f"{HOST}:8000",
        "HTTP_USER_AGENT": "bench",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
    }
    if size:
        environ["CONTENT_LENGTH"] = str(size)
        environ["CONTENT_TYPE"] = "application/octet-stream"
    return environ


def call(app: WSGIApplication, template: dict[str, Any], size: int, expect: int) -> None:
    """One request, as a WSGI server makes it; raise `BenchError` unless the answer is right."""
    environ = dict(template)
    environ["wsgi.input"] = Body(size)
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return None

    iterable = app(environ, start_response)
    received = 0
    try:
        for chunk in iterable:
            received += len(chunk)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    if statuses[-1:] != ["200 OK"] or received != expect:
        raise BenchError(f"got {statuses} with {received} of {expect} bytes")


@dataclass(frozen=True)
class Scenario:
    label: str
    asgi: Callable[[], ASGIApp]
    wsgi: Callable[[], WSGIApplication]
    method: str = "GET"
    size: int = 0
    expect: int = len(apps.HELLO)


SCENARIOS = {
    "hello": Scenario("hello world, in-process", lambda: apps.hello_asgi, lambda: apps.hello_wsgi),
    "1mib": Scenario(
        "1 MiB response in 64 KiB chunks, in-process",
        lambda: apps.stream_asgi(MIB, 64 * KIB),
        lambda: apps.stream_wsgi(MIB, 64 * KIB),
        expect=MIB,
    ),
    "post": Scenario(
        "10 MiB POST read in 64 KiB pieces, in-process",
        lambda: apps.upload_asgi,
        lambda: apps.upload_wsgi,
        method="POST",
        size=POST_SIZE,
        expect=len(str(POST_SIZE)),
    ),
}


def _blocks(calls: Callable[[int], None], seconds: float) -> Iterator[float]:
    """Run ``calls(n)`` in timed blocks for ``seconds``; yield each block's calls/s."""
    started = time.perf_counter()
    calls(1)  # warm-up: the loop, the caches, the threads
    first = time.perf_counter() - started
    size = max(1, min(10_000, int(0.05 / max(first, 1e-6))))  # blocks of about 50 ms
    done = 0
    deadline = time.perf_counter() + seconds
    while done < MAX_CALLS and time.perf_counter() < deadline:
        block_start = time.perf_counter()
        calls(size)
        yield size / (time.perf_counter() - block_start)
        done += size


def _measure_rate(key: str, contender: str, seconds: float) -> dict[str, Any]:
    scenario = SCENARIOS[key]
    app, close = build(contender, scenario.asgi(), scenario.wsgi())
    template = _environ(scenario.method, scenario.size)

    def calls(count: int) -> None:
        for _ in range(count):
            call(app, template, scenario.size, scenario.expect)

    try:
        best = max(_blocks(calls, seconds))
    except BenchError as exc:
        return {"error": f"error: {exc}"[:60]}
    finally:
        close()
    return {"value": best}


# -- memory ----------------------------------------------------------------------------------


def _measure_memory(mode: str, contender: str, mib: int) -> dict[str, Any]:
    size = mib * MIB
    if mode == "upload":
        app, close = build(contender, apps.upload_asgi, apps.upload_wsgi)
        template, body, expect = _environ("POST", size), size, len(str(size))
        warm = (_environ("POST", MIB), MIB, len(str(MIB)))
    else:
        app, close = build(contender, download_asgi, download_wsgi)
        template, body, expect = _environ("GET", 0, str(size)), 0, size
        warm = (_environ("GET", 0, str(MIB)), 0, MIB)
    try:
        call(app, *warm)  # starts the loops and threads, fills the caches
        gc.collect()
        exact = reset_peak()
        baseline = status_kib("VmRSS")
        if not exact:
            baseline = max(baseline, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        started = time.perf_counter()
        call(app, template, body, expect)
        seconds = time.perf_counter() - started
        peak = status_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except BenchError as exc:
        return {"error": f"error: {exc}"[:60]}
    finally:
        close()
    return {"value": max(0, peak - baseline) * KIB, "seconds": seconds}


# -- gunicorn + wrk --------------------------------------------------------------------------

_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
_SERVER_APPS = {
    "native": "native",
    "crossgate": "crossgate",
    "crossgate-shared": "crossgate_shared",
    "a2wsgi": "a2wsgi",
}


def _gunicorn(contender: str, log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    command = [
        *(sys.executable, "-m", "gunicorn", f"bench.a2w_server_apps:{_SERVER_APPS[contender]}"),
        *("--bind", f"{HOST}:0", "--worker-class", "sync", "--workers", "2"),
        *("--graceful-timeout", "2", "--log-level", "info", "--no-control-socket"),
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        found = _LISTENING.search(log_path.read_text(errors="replace"))
        if found:
            return proc, int(found.group(1))
        time.sleep(0.05)
    stop_process(proc, STOP_TIMEOUT)
    raise RuntimeError(f"gunicorn did not start: {log_path.read_text(errors='replace')[-80:]}")


def _wrk(port: int, seconds: float) -> str:
    # Sync workers serve one connection each and close it after every response: a few
    # connections keep both workers busy without a deep accept queue.
    command = ["wrk", "-t2", "-c8", f"-d{max(1, round(seconds))}s", "--latency"]
    proc = subprocess.run(  # bounded: wrk stops itself, and the timeout backs it up
        [*command, f"http://{HOST}:{port}/"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr.strip()[:60]}")
    return proc.stdout


def _load(port: int | str, seconds: float) -> dict[str, Any]:
    """One wrk run against the server on ``port`` (an error string instead of a port: that)."""
    if isinstance(port, str):
        return {"error": port}
    try:
        result = server.parse_wrk(_wrk(port, seconds))
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
        return {"error": f"error: {exc}"[:60]}
    return {"value": result.requests_per_s, "errors": float(result.errors)}


@contextmanager
def _gunicorns(contenders: tuple[str, ...]) -> Iterator[dict[str, int | str]]:
    """Start one gunicorn per contender, side by side; yield each one's port (or why it has
    none); stop them all, by PID, whatever happens."""
    log_dir = ROOT / "bench" / "results"
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int | str] = {}
    try:
        for contender in contenders:
            if shutil.which("wrk") is None:
                ports[contender] = "no wrk"
                continue
            try:
                proc, port = _gunicorn(contender, log_dir / f"gunicorn-{contender}.log")
            except RuntimeError as exc:
                ports[contender] = str(exc)[:60]
                continue
            procs.append(proc)
            ports[contender] = port
        yield ports
    finally:
        for proc in procs:
            stop_process(proc, STOP_TIMEOUT)


# -- the table -------------------------------------------------------------------------------


def _child(kind: str, key: str, contender: str, amount: float) -> dict[str, Any]:
    args = ["--child", kind, key, contender, "--amount", str(amount)]
    return run_child("bench.asgi_to_wsgi", args, timeout=amount + 2 * GRACE)


def _at_least(row: Row, column: str, factor: float) -> bool | None:
    ratio = row.ratio(column)
    return None if ratio is None else ratio >= factor


def _at_most(row: Row, limit: float) -> bool | None:
    ours = row.number("crossgate")
    return None if ours is None else ours <= limit


def _shown(value: Cell, unit: str) -> str:
    return value if isinstance(value, str) else f"{value:,.1f} {unit}"


def _rate_rows(settings: Settings) -> list[Row]:
    rows = []
    targets = {"hello": (8.0, 1.5), "post": (5.0, None)}
    for key, scenario in SCENARIOS.items():
        results = {c: cell(_child("rate", key, c, settings.seconds)) for c in CONTENDERS}
        for contender, value in results.items():
            progress(f"  {key:<6} {contender:<16} {_shown(value, 'calls/s')}")
        for ours, suffix in (("crossgate", ""), ("crossgate-shared", ", shared mode")):
            row = Row(f"{scenario.label}{suffix} (calls/s)", "rate")
            row.cells = {
                "native": results["native"],
                "crossgate": results[ours],
                "a2wsgi": results["a2wsgi"],
            }
            factor = targets.get(key, (None, None))[0 if ours == "crossgate" else 1]
            if factor is not None:
                row.target = f">= {factor:g}x a2wsgi"
                row.met = _at_least(row, "a2wsgi", factor)
            rows.append(row)
    return rows


def _memory_rows(settings: Settings) -> list[Row]:
    rows = []
    for mode in ("upload", "download"):
        results = {c: _child("memory", mode, c, settings.mib) for c in CONTENDERS}
        for contender, result in results.items():
            progress(f"  {mode:<8} {contender:<16} {_shown(cell(result), 'bytes extra peak RSS')}")
        for ours, suffix in (("crossgate", ""), ("crossgate-shared", ", shared mode")):
            row = Row(f"{settings.mib} MiB {mode}{suffix}: extra peak RSS", "bytes")
            row.cells = {
                "native": cell(results["native"]),
                "crossgate": cell(results[ours]),
                "a2wsgi": cell(results["a2wsgi"]),
            }
            row.target, row.met = "crossgate <= 8 MiB", _at_most(row, 8 * MIB)
            rows.append(row)
    return rows


def _server_rows(settings: Settings) -> tuple[list[Row], str | None]:
    """The gunicorn rows, and a note on how the crossgate/native ratio spread over the rounds."""
    rate = Row("gunicorn sync x2 + wrk -c8: requests/s", "rate")
    errors = Row("gunicorn sync x2 + wrk -c8: errors", "count")
    contenders = ("native", "crossgate", "a2wsgi")
    rounds: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
    # All servers run side by side (an idle one costs nothing) and the contenders take short
    # turns, in alternating order: on a machine whose speed drifts (other tenants on the host),
    # the two figures of one round are measured seconds apart, under nearly the same conditions.
    with _gunicorns(contenders) as ports:
        if settings.wrk_warmup > 0:
            for port in ports.values():
                _load(port, settings.wrk_warmup)
        for index in range(settings.wrk_rounds):
            for contender in contenders if index % 2 == 0 else contenders[::-1]:
                result = _load(ports[contender], settings.wrk_seconds)
                progress(f"  gunicorn {contender:<16} {_shown(cell(result), 'req/s')}")
                rounds[contender].append(result)
    # The table shows the round whose crossgate/native ratio is the median one, so a burst of
    # load elsewhere moves the comparison least; the spread of the ratio over all rounds is
    # printed below the table.
    paired = [
        (float(c["value"]) / float(n["value"]), index)
        for index, (n, c) in enumerate(zip(rounds["native"], rounds["crossgate"], strict=True))
        if "error" not in n and "error" not in c and float(n["value"])
    ]
    if paired:
        chosen = sorted(paired)[len(paired) // 2][1]
        for contender in contenders:
            rate.cells[contender] = cell(rounds[contender][chosen])
    else:
        for contender in contenders:
            rate.cells[contender] = cell(rounds[contender][0])
    for contender, results in rounds.items():
        good = [r for r in results if "error" not in r]
        errors.cells[contender] = (
            float(sum(r["errors"] for r in good)) if good else cell(results[0])
        )
    rate.target, rate.met = ">= 0.85x native", _at_least(rate, "native", 0.85)
    errors.target, errors.met = "crossgate 0", _at_most(errors, 0)
    return [rate, errors], _spread(sorted(ratio for ratio, _ in paired), rounds)


def _spread(ratios: list[float], rounds: dict[str, list[dict[str, Any]]]) -> str | None:
    """How the paired crossgate/native ratios spread: median, quartiles, ratio of totals."""
    if len(ratios) < 2:
        return None
    quartiles = statistics.quantiles(ratios, n=4)
    both = [
        (float(n["value"]), float(c["value"]))
        for n, c in zip(rounds["native"], rounds["crossgate"], strict=True)
        if "error" not in n and "error" not in c
    ]
    totals = {"native": sum(n for n, _ in both), "crossgate": sum(c for _, c in both)}
    return (
        f"gunicorn crossgate/native over {len(ratios)} rounds: median "
        f"{statistics.median(ratios):.3f}, quartiles {quartiles[0]:.3f} to {quartiles[2]:.3f}, "
        f"range {ratios[0]:.3f} to {ratios[-1]:.3f}; all requests of those rounds: "
        f"{totals['crossgate'] / totals['native']:.3f}."
    )


NOTES = [
    "crossgate runs in inline mode (the app's loop is driven by the WSGI thread) unless the "
    "row says shared mode (one loop thread per process, two thread hand-offs a request).",
    "In-process: a fake WSGI server calls each contender; best 50 ms block after a warm-up, a "
    "fresh process per figure. Ratios: crossgate / column.",
    "Extra peak RSS: the kernel's VmHWM, reset (clear_refs) right before the request, minus "
    "VmRSS then; the body moves in 64 KiB pieces, fresh copies each.",
    "gunicorn: 2 sync workers per contender on 127.0.0.1, all servers up side by side, wrk -t2 "
    "-c8 on the same 2 cores; the contenders take short turns in alternating order, round after "
    "round; shown: the round with the median crossgate/native ratio; errors (all rounds) are "
    "non-2xx/3xx answers plus socket errors.",
]


def section(quick: bool) -> Table:
    settings = QUICK if quick else FULL
    progress("== ASGIToWSGI: in-process")
    rows = _rate_rows(settings)
    progress("== ASGIToWSGI: memory")
    rows += _memory_rows(settings)
    progress("== ASGIToWSGI: gunicorn + wrk")
    server_rows, spread = _server_rows(settings)
    rows += server_rows
    return Table(
        title="ASGIToWSGI: an ASGI app in a WSGI server",
        columns=COLUMNS,
        ratios=RATIOS,
        rows=rows,
        notes=NOTES if spread is None else [*NOTES, spread],
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.asgi_to_wsgi", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shrink every measurement")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "KEY", "CONTENDER"))
    parser.add_argument("--amount", type=float, default=1.0)
    args = parser.parse_args()
    if args.child is None:
        print(text_table(section(args.quick)))
        return
    kind, key, contender = args.child
    if kind == "rate":
        result = _measure_rate(key, contender, args.amount)
    else:
        result = _measure_memory(key, contender, int(args.amount))
    # a2wsgi's loop thread is never stopped: do not wait for it at exit.
    emit(result, hard_exit=contender == "a2wsgi")


if __name__ == "__main__":
    main()
