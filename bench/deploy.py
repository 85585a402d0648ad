"""Hello world the way people deploy it: each server, each contender, paired rounds of wrk -c50.

The data behind the docs' Benchmarks page. ASGI servers (uvicorn with httptools and uvloop,
hypercorn, granian) serve the native ASGI app, the floor (one ``run_in_executor`` round trip,
see ``bench.server_apps``) and the WSGI app through crossgate, a2wsgi and asgiref; gunicorn (sync
and gthread workers) serves the native WSGI app and the ASGI app through crossgate and a2wsgi.

For one server, every contender runs side by side (an idle server costs nothing) and they take
short wrk turns in alternating order, round after round, so the figures of one round are taken
seconds apart under nearly the same load. A full run writes everything, every round included,
to ``bench/data/deploy.json`` (committed; ``python -m bench.charts`` draws the page from it); a
``--quick`` run writes ``bench/results/deploy.json`` instead.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import server
from bench.report import Row, Table, text_table
from bench.subproc import ROOT, progress, stop_process

__all__ = ["DATA", "SERVERS", "section", "turn"]

DATA = ROOT / "bench" / "data" / "deploy.json"
QUICK_DATA = ROOT / "bench" / "results" / "deploy.json"
HOST = server.HOST
CONNECTIONS = 50
WRK_THREADS = 1
ASGI_CONTENDERS = ("native", "floor", "crossgate", "a2wsgi", "asgiref")
WSGI_CONTENDERS = ("native", "crossgate", "a2wsgi")
PACKAGES = ("crossgate", "uvicorn", "httptools", "uvloop", "hypercorn", "granian", "gunicorn")
PEERS = ("a2wsgi", "asgiref")
PY = sys.executable


@dataclass(frozen=True)
class Server:
    label: str
    interface: str  # "asgi": serves bench.server_apps; "wsgi": bench.a2w_server_apps
    command: Callable[[str, str], list[str]]  # (module:attr, port) -> argv

    @property
    def contenders(self) -> tuple[str, ...]:
        return ASGI_CONTENDERS if self.interface == "asgi" else WSGI_CONTENDERS

    @property
    def reference(self) -> str:
        """What crossgate is a share of: the floor in an ASGI server, native WSGI in a WSGI one."""
        return "floor" if self.interface == "asgi" else "native"


def _gunicorn(worker: str, *extra: str) -> Callable[[str, str], list[str]]:
    return lambda target, port: [
        *(PY, "-m", "gunicorn", target, "--bind", f"{HOST}:{port}", "--workers", "2"),
        *("--worker-class", worker, *extra, "--log-level", "warning", "--no-control-socket"),
    ]


SERVERS = {
    "uvicorn": Server(
        "uvicorn + httptools + uvloop, 1 worker",
        "asgi",
        lambda target, port: [
            *(PY, "-m", "uvicorn", target, "--host", HOST, "--port", port),
            *(
                "--http",
                "httptools",
                "--loop",
                "uvloop",
                "--no-access-log",
                "--log-level",
                "warning",
            ),
        ],
    ),
    "hypercorn": Server(
        "hypercorn (uvloop worker), 1 worker",
        "asgi",
        lambda target, port: [
            *(PY, "-m", "hypercorn", target, "--bind", f"{HOST}:{port}"),
            *("--worker-class", "uvloop", "--log-level", "warning"),
        ],
    ),
    "granian": Server(
        "granian --interface asgi, 1 worker",
        "asgi",
        lambda target, port: [
            *(PY, "-m", "granian", target, "--interface", "asgi", "--host", HOST),
            *("--port", port, "--workers", "1", "--log-level", "warning"),
            # A worker that ignores the stop (asgiref's, stuck in its thread) is killed by
            # granian itself before the benchmark kills the main process and orphans it.
            *("--workers-kill-timeout", "2"),
        ],
    ),
    "gunicorn-sync": Server("gunicorn sync, 2 workers", "wsgi", _gunicorn("sync")),
    "gunicorn-gthread": Server(
        "gunicorn gthread, 2 workers x 4 threads", "wsgi", _gunicorn("gthread", "--threads", "4")
    ),
}


@dataclass(frozen=True)
class Settings:
    seconds: float  # one contender's wrk turn
    warmup: float
    rounds: int


FULL = Settings(seconds=3, warmup=1, rounds=7)
QUICK = Settings(seconds=1, warmup=0, rounds=1)


@contextmanager
def _side_by_side(key: str, spec: Server) -> Iterator[dict[str, int | str]]:
    """Start the server once per contender; yield each one's port, or why it has none."""
    module = "bench.server_apps" if spec.interface == "asgi" else "bench.a2w_server_apps"
    ports: dict[str, int | str] = {}
    with ExitStack() as stack:
        for contender in spec.contenders:
            port = server.free_port()
            log = server.LOG_DIR / f"deploy-{key}-{contender}.log"
            try:
                command = spec.command(f"{module}:{contender}", str(port))
                proc = server.start(key, command, port, log)
            except RuntimeError as exc:
                ports[contender] = f"error: {exc}"[:60]
                continue
            stack.callback(stop_process, proc, server.STOP_TIMEOUT)
            ports[contender] = port
        yield ports


def turn(port: int | str, seconds: float, connections: int = CONNECTIONS) -> dict[str, Any]:
    """One wrk turn: requests/s, p99 in ms and errors, or why there is no figure."""
    if isinstance(port, str):
        return {"error": port}
    try:
        result = server.parse_wrk(server.wrk(port, seconds, WRK_THREADS, connections))
    except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:  # OSError: no wrk
        return {"error": f"error: {exc}"[:60]}
    # An error answer is not a served request (asgiref answers some with 500s under uvicorn,
    # asgiref #491): "rps" counts 2xx/3xx answers only; wrk's own figure is kept beside it.
    return {
        "rps": result.good_per_s,
        "wrk_rps": result.requests_per_s,
        "p99_ms": result.p99_ms,
        "errors": result.errors,
    }


def _summary(turns: list[dict[str, Any]]) -> dict[str, Any]:
    good = [t for t in turns if "error" not in t]
    if not good:
        return {"error": turns[0]["error"] if turns else "not measured"}
    return {
        "rps": statistics.median(t["rps"] for t in good),
        "p99_ms": statistics.median(t["p99_ms"] for t in good),
        "errors": sum(t["errors"] for t in good),
        "failed_turns": len(turns) - len(good),
    }


def _share(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """crossgate / reference, paired round by round: median and range of the per-round ratios."""
    ratios = sorted(
        c["rps"] / r["rps"]
        for c, r in zip(ours, theirs, strict=True)
        if "error" not in c and "error" not in r and r["rps"]
    )
    if not ratios:
        return None
    return {"median": statistics.median(ratios), "min": ratios[0], "max": ratios[-1]}


def measure_server(key: str, settings: Settings) -> dict[str, Any]:
    spec = SERVERS[key]
    progress(f"== deploy: {spec.label}")
    load = [round(x, 2) for x in os.getloadavg()]
    turns: dict[str, list[dict[str, Any]]] = {c: [] for c in spec.contenders}
    with _side_by_side(key, spec) as ports:
        if settings.warmup > 0:
            for port in ports.values():
                turn(port, settings.warmup)
        for index in range(settings.rounds):
            order = spec.contenders if index % 2 == 0 else spec.contenders[::-1]
            for contender in order:
                result = turn(ports[contender], settings.seconds)
                shown = (
                    result.get("error")
                    or f"{result['rps']:,.0f} req/s, p99 {result['p99_ms']:.1f} ms"
                )
                progress(f"  round {index + 1} {contender:<9} {shown}")
                turns[contender].append(result)
    return {
        "key": key,
        "label": spec.label,
        "interface": spec.interface,
        "reference": spec.reference,
        "load_at_start": load,
        "command": " ".join(["python", *spec.command("APP", "PORT")[1:]]),
        "contenders": {c: {"summary": _summary(t), "turns": t} for c, t in turns.items()},
        "share": _share(turns["crossgate"], turns[spec.reference]),
    }


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in (*PACKAGES, *PEERS):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10, check=False)
        versions["wrk"] = (wrk.stdout or wrk.stderr).split()[1]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        versions["wrk"] = "not installed"
    return versions


def run(settings: Settings, quick: bool, servers: list[str]) -> dict[str, Any]:
    """Measure ``servers`` and return the whole record, as written to the data file."""
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC)
    results = [measure_server(key, settings) for key in servers]
    return {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "machine": {
            "cpu_model": _cpu_model(),
            "cores": os.cpu_count(),
            "system": f"{platform.system()} {platform.release()} {platform.machine()}",
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        # Free text on the conditions (say so when other jobs shared the machine).
        "note": os.environ.get("BENCH_NOTE", ""),
        "versions": _versions(),
        "method": {
            "wrk": f"wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{settings.seconds:g}s",
            "rps": "2xx/3xx answers per second (wrk's Requests/sec less its non-2xx/3xx share)",
            "seconds": settings.seconds,
            "warmup": settings.warmup,
            "rounds": settings.rounds,
            "minutes": round((datetime.datetime.now(datetime.UTC) - started).seconds / 60, 1),
        },
        "servers": results,
    }


def write(record: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")


def _table(record: dict[str, Any]) -> Table:
    rows = []
    notes = [
        f"{record['method']['wrk']} per turn, {record['method']['rounds']} rounds in alternating "
        "order, every contender of one server up side by side; figures: median of the rounds.",
        f"load average before {record['machine']['load_before']}, "
        f"after {record['machine']['load_after']}.",
    ]
    for entry in record["servers"]:
        rate = Row(f"{entry['label']}: requests/s", "rate")
        p99 = Row(f"{entry['label']}: p99", "ms")
        for contender, data in entry["contenders"].items():
            summary = data["summary"]
            rate.cells[contender] = summary.get("error") or float(summary["rps"])
            p99.cells[contender] = summary.get("error") or float(summary["p99_ms"])
        rows += [rate, p99]
        share = entry["share"]
        if share is not None:
            notes.append(
                f"{entry['label']}: crossgate / {entry['reference']} paired by round: median "
                f"{share['median']:.2f}, range {share['min']:.2f} to {share['max']:.2f}."
            )
    columns = ASGI_CONTENDERS
    return Table("Deployments: hello world, wrk -c50", columns, columns[:2] + PEERS, rows, notes)


def section(quick: bool, servers: list[str] | None = None) -> Table:
    """Measure every deployment, write the data file, return the table."""
    record = run(QUICK if quick else FULL, quick, servers or list(SERVERS))
    # Only a full run of every server replaces the committed data.
    path = DATA if not quick and len(record["servers"]) == len(SERVERS) else QUICK_DATA
    write(record, path)
    progress(f"  written to {path.relative_to(ROOT)}")
    return _table(record)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.deploy", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short round, to bench/results")
    parser.add_argument("servers", nargs="*", metavar="SERVER", help=", ".join(SERVERS))
    args = parser.parse_args()
    unknown = [name for name in args.servers if name not in SERVERS]
    if unknown:
        parser.error(f"unknown server {unknown[0]!r}; choose from {', '.join(SERVERS)}")
    print(text_table(section(args.quick, args.servers)))


if __name__ == "__main__":
    main()
