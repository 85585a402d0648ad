"""Abandoned uploads under uvicorn: how much memory they take, and whether it comes back.

Each client announces a 10 MB body (``Content-Length: 10000000``), sends between 64 KiB and
3 MiB of it and drops the connection, 20 at a time, 500 in all, over raw sockets on 127.0.0.1.
The server is a real uvicorn process (one worker) serving `bench.apps.upload_wsgi` through
crossgate and through a2wsgi, one after the other in the same run. Rows: the worker's RSS after
a warm-up (baseline), its peak during the storm (the kernel's ``VmHWM``, reset through
``/proc/PID/clear_refs`` right before the storm, proc(5)), and its RSS 5 s after the last client
left.

``bash bench/run upload-storm`` runs this section alone.
"""

from __future__ import annotations

import argparse
import http.client
import random
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.report import Row, Table, text_table
from bench.subproc import ROOT, Cell, progress, stop_process

__all__ = ["section", "storm"]

HOST = "127.0.0.1"
# Column -> the app in bench.storm_apps. a2wsgi runs 10 threads by default, crossgate 32.
APPS = {"crossgate": "crossgate", "a2wsgi": "a2wsgi", "crossgate 10 threads": "crossgate_10"}
COLUMNS = tuple(APPS)
KIB = 1024
MIB = 1024 * KIB
ANNOUNCED = 10_000_000
PIECE = 64 * KIB
READY_TIMEOUT = 20.0
# Every socket operation is bounded: a server that stops reading cannot hang the benchmark.
SOCKET_TIMEOUT = 20.0
LOG_DIR = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Settings:
    clients: int
    concurrency: int
    low: int  # smallest part of the body a client sends before it drops
    high: int  # largest
    settle: float  # seconds after the storm before the last RSS reading
    rounds: int  # storms per contender, alternating which goes first; the table has medians


FULL = Settings(clients=500, concurrency=20, low=64 * KIB, high=3 * MIB, settle=5.0, rounds=3)
QUICK = Settings(clients=60, concurrency=20, low=64 * KIB, high=3 * MIB, settle=5.0, rounds=1)


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _reset_peak(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _post(port: int, size: int) -> int:
    """A complete upload of ``size`` bytes; the status."""
    connection = http.client.HTTPConnection(HOST, port, timeout=SOCKET_TIMEOUT)
    try:
        connection.request("POST", "/upload", body=b"x" * size)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _wait_ready(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with status {proc.returncode}")
        try:
            if _post(port, 1) == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"uvicorn was not answering after {READY_TIMEOUT:.0f} s")


def _abandon(port: int, size: int) -> None:
    """Announce ``ANNOUNCED`` bytes, send ``size`` of them, and drop the connection."""
    head = (
        f"POST /upload HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {ANNOUNCED}\r\n\r\n"
    ).encode()
    piece = b"x" * PIECE
    with socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(head)
        sent = 0
        while sent < size:
            chunk = piece[: size - sent]
            sock.sendall(chunk)
            sent += len(chunk)


def storm(port: int, settings: Settings, seed: int = 14) -> int:
    """Run the storm against ``port``; the number of clients that could not send their part."""
    rng = random.Random(seed)
    sizes = [rng.randint(settings.low, settings.high) for _ in range(settings.clients)]
    failed = 0
    with ThreadPoolExecutor(settings.concurrency) as pool:
        for future in [pool.submit(_abandon, port, size) for size in sizes]:
            try:
                future.result()
            except OSError:
                failed += 1
    return failed


def measure(name: str, settings: Settings) -> dict[str, float] | str:
    """Serve ``bench.storm_apps:<name>`` and storm it; figures in bytes, or why there are none."""
    port = _free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path: Path = LOG_DIR / f"uvicorn-storm-{APPS[name]}.log"
    command = [
        *(sys.executable, "-m", "uvicorn", f"bench.storm_apps:{APPS[name]}"),
        *("--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning"),
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(proc, port)
            # Warm-up, as a server that has served traffic: complete uploads, as many at once
            # as the storm's clients, start the pool threads and fill the caches.
            with ThreadPoolExecutor(settings.concurrency) as pool:
                list(pool.map(lambda _: _post(port, MIB), range(2 * settings.concurrency)))
            # Settled: crossgate trims the C heap a second after a burst of bodies.
            time.sleep(3.0)
            baseline = _status_kib(proc.pid, "VmRSS")
            exact = _reset_peak(proc.pid)
            failed = storm(port, settings)
            peak = _status_kib(proc.pid, "VmRSS")
            # The kernel takes the clients' bytes faster than the server reads them, so the
            # server is still at work when the last client has left: the peak is read after
            # the settling time, and covers it.
            time.sleep(settings.settle)
            after = _status_kib(proc.pid, "VmRSS")
            if exact:
                peak = _status_kib(proc.pid, "VmHWM")
            if proc.poll() is not None:
                return f"error: uvicorn exited with status {proc.returncode}"
            # The server must still serve once the storm is over.
            status = _post(port, MIB)
            if status != 200:
                return f"error: {status} after the storm"
        except (OSError, RuntimeError) as exc:
            return f"error: {exc}"[:60]
        finally:
            stop_process(proc)
    return {
        "baseline": float(baseline * KIB),
        "peak": float(peak * KIB),
        "after": float(after * KIB),
        "failed_clients": float(failed),
    }


def section(quick: bool) -> Table:
    settings = QUICK if quick else FULL
    rows = {
        "baseline": Row("RSS after warm-up (baseline)", "bytes"),
        "peak": Row("peak RSS during the storm", "bytes"),
        "after": Row(f"RSS {settings.settle:g} s after the storm", "bytes"),
        "growth": Row(f"RSS {settings.settle:g} s after minus baseline", "bytes"),
    }
    progress("== upload storm: uvicorn, abandoned uploads")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in COLUMNS}
    errors: dict[str, str] = {}
    for number in range(settings.rounds):
        # Alternate who goes first: the machine's load drifts during a run.
        for name in COLUMNS if number % 2 == 0 else reversed(COLUMNS):
            result = measure(name, settings)
            if isinstance(result, str):
                progress(f"  {name:<9} {result}")
                errors[name] = result
                continue
            progress(
                f"  {name:<9} baseline {result['baseline'] / MIB:.1f} MiB, "
                f"peak {result['peak'] / MIB:.1f} MiB, after {result['after'] / MIB:.1f} MiB, "
                f"{result['failed_clients']:.0f} clients could not send their part"
            )
            result["growth"] = result["after"] - result["baseline"]
            runs[name].append(result)
    for name in COLUMNS:
        if not runs[name]:
            for row in rows.values():
                row.cells[name] = errors.get(name, "no figure")
            continue
        for key, row in rows.items():
            row.cells[name] = statistics.median(run[key] for run in runs[name])
    peak, growth = rows["peak"], rows["growth"]
    ours: Cell | None = peak.cells.get("crossgate")
    theirs: Cell | None = peak.cells.get("a2wsgi")
    if isinstance(ours, float) and isinstance(theirs, float):
        peak.target, peak.met = "crossgate <= a2wsgi", ours <= theirs
    grown = growth.cells.get("crossgate")
    if isinstance(grown, float):
        growth.target, growth.met = "crossgate <= 20 MiB", grown <= 20 * MIB
    method = (
        f"uvicorn (1 worker) serving a WSGI upload app through each adapter in turn; "
        f"{settings.clients} raw-socket clients, {settings.concurrency} at a time, each announcing "
        f"{ANNOUNCED:,} bytes, sending {settings.low // KIB} KiB to {settings.high // MIB} MiB of "
        f"them and dropping the connection."
    )
    notes = [
        "Peak: VmHWM of the uvicorn process, reset through /proc/PID/clear_refs before the storm.",
        "crossgate runs 32 worker threads by default, a2wsgi 10; 'crossgate 10 threads' is "
        "crossgate with workers=10. Each running upload holds about one server message "
        "(~230 KiB under uvicorn) plus what uvicorn reads in behind it, whatever the adapter.",
        "Baseline: VmRSS 3 s after a warm-up of 40 complete 1 MiB uploads, 20 at a time.",
        f"Each figure is the median of {settings.rounds} storm(s) per contender, a fresh uvicorn "
        "each, the contenders alternating.",
    ]
    return Table(
        "Abandoned uploads under uvicorn: memory",
        COLUMNS,
        (),
        list(rows.values()),
        [method, *notes],
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upload_storm", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer clients")
    print(text_table(section(parser.parse_args().quick)))


if __name__ == "__main__":
    main()
