"""crossgate at two or more commits, side by side in one server, paired rounds of wrk.

``python -m bench.compare [--server uvicorn] [--rounds 9] REF [REF ...]`` checks each REF
(a commit, a branch, or ``WORK`` for the working tree) out into a temporary directory and
serves ``bench.server_apps:crossgate`` (ASGI servers) or ``bench.a2w_server_apps:crossgate``
(gunicorn) from it, beside the reference app of that server (the floor, or native WSGI). The
contenders take wrk turns in alternating order, round after round, as in ``bench.deploy``;
the table gives each one's median requests/s, its median share of the reference and its median
gain over the first REF, both paired round by round, with the quartiles of those ratios.

This is how a change to a request path is judged: a change that does not gain at least 2 %
end to end against its parent is not kept (issue 20).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

from bench import server
from bench.deploy import SERVERS, turn
from bench.subproc import ROOT, progress, stop_process

__all__ = ["checkout", "main"]

# Outside the repository: each tree links back to this bench/, which tools walking the
# repository (mypy) would otherwise follow round and round. One directory per checkout, as
# each links back to its own bench/.
_CHECKOUT = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
TREES = Path(tempfile.gettempdir()) / f"crossgate-bench-trees-{_CHECKOUT}"
TICKS = os.sysconf("SC_CLK_TCK")


def checkout(ref: str) -> Path:
    """A directory whose ``crossgate`` package is ``ref``'s and whose ``bench`` is this one."""
    if ref == "WORK":
        return ROOT
    sha = subprocess.run(
        ["git", "rev-parse", "--short=12", f"{ref}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = TREES / sha
    if not (tree / "crossgate").is_dir():
        archive = subprocess.run(
            ["git", "archive", "--format=tar", sha, "crossgate"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        tree.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
    link = tree / "bench"
    if not link.exists():
        link.symlink_to(ROOT / "bench")
    return tree


@contextmanager
def _servers(key: str, refs: list[str]) -> Iterator[dict[str, tuple[int, int] | str]]:
    """Each contender's (port, pid), or why it has none."""
    spec = SERVERS[key]
    module = "bench.server_apps" if spec.interface == "asgi" else "bench.a2w_server_apps"
    wanted = [
        (spec.reference, ROOT, spec.reference),
        *((ref, checkout(ref), "crossgate") for ref in refs),
    ]
    ports: dict[str, tuple[int, int] | str] = {}
    with ExitStack() as stack:
        for label, cwd, app in wanted:
            port = server.free_port()
            log = server.LOG_DIR / f"compare-{key}-{label.replace('/', '_')}.log"
            try:
                # The working directory comes first on sys.path: its crossgate is the one served.
                proc = server.start(key, spec.command(f"{module}:{app}", str(port)), port, log, cwd)
            except RuntimeError as exc:
                ports[label] = f"error: {exc}"[:60]
                continue
            stack.callback(stop_process, proc, server.STOP_TIMEOUT)
            ports[label] = (port, proc.pid)
        yield ports


def _turn(where: tuple[int, int] | str, seconds: float, connections: int) -> dict[str, Any]:
    """One wrk turn, with the server's CPU time per request (microseconds) added."""
    if isinstance(where, str):
        return {"error": where}
    port, pid = where
    before = _cpu_seconds(pid)
    result = turn(port, seconds, connections)
    if "rps" in result and result["wrk_rps"]:
        requests = result["wrk_rps"] * max(1, round(seconds))
        result["cpu_us"] = (_cpu_seconds(pid) - before) / requests * 1e6
    return result


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` and of its children, in seconds."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:  # gone meanwhile, or not Linux
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
        pending += [int(child) for child in children]
    return total


def _quartiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "-"
    q1, median, q3 = statistics.quantiles(values, n=4)
    return f"{median:.3f} ({q1:.3f}-{q3:.3f})"


def compare(key: str, refs: list[str], rounds: int, seconds: float, connections: int) -> str:
    reference = SERVERS[key].reference
    with _servers(key, refs) as ports:
        labels = list(ports)
        for where in ports.values():
            _turn(where, 1, connections)  # warm-up
        turns: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
        for index in range(rounds):
            for label in labels if index % 2 == 0 else labels[::-1]:
                result = _turn(ports[label], seconds, connections)
                turns[label].append(result)
                shown = (
                    result.get("error") or f"{result['rps']:,.0f} req/s p99 {result['p99_ms']:.1f}"
                )
                progress(f"  round {index + 1} {label:<14} {shown}")

    def paired(a: str, b: str, key: str = "rps") -> list[float]:
        return [
            x[key] / y[key]
            for x, y in zip(turns[a], turns[b], strict=True)
            if key in x and key in y and y[key]
        ]

    lines = [
        f"{SERVERS[key].label}, wrk -t1 -c{connections} -d{seconds:g}s, {rounds} rounds, "
        f"load {os.getloadavg()[0]:.2f}",
        f"| contender | req/s | p99 ms | CPU us/request | req/s / {reference} (quartiles) "
        f"| req/s / {refs[0]} (quartiles) | CPU / {refs[0]} (quartiles) |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for label in labels:
        good = [t for t in turns[label] if "rps" in t]
        if not good:
            lines.append(f"| {label} | {turns[label][0].get('error')} | | | | | |")
            continue
        rps = statistics.median(t["rps"] for t in good)
        p99 = statistics.median(t["p99_ms"] for t in good)
        cpu = statistics.median(t.get("cpu_us", 0.0) for t in good)
        share = _quartiles(paired(label, reference)) if label != reference else ""
        gain = cpu_gain = ""
        if label in refs[1:]:
            gain = _quartiles(paired(label, refs[0]))
            cpu_gain = _quartiles(paired(label, refs[0], "cpu_us"))
        lines.append(
            f"| {label} | {rps:,.0f} | {p99:.1f} | {cpu:.1f} | {share} | {gain} | {cpu_gain} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--server", default="uvicorn", choices=list(SERVERS))
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("refs", nargs="+", metavar="REF")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (bash bench/run installs it)")
    print(compare(args.server, args.refs, args.rounds, args.seconds, args.connections))


if __name__ == "__main__":
    main()
