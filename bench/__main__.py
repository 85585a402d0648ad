"""``python -m bench [--quick]``: every measurement, then one table (also bench/results/latest.md).

Benchmarks are not tests: a missed target is reported, never turned into a failing exit status.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from dataclasses import dataclass

from bench import inprocess, memory, report, server
from bench.report import COLUMNS, Row
from bench.subproc import ROOT, cell

MIB = 1024 * 1024
RESULTS = ROOT / "bench" / "results" / "latest.md"


@dataclass(frozen=True)
class Settings:
    seconds: float  # in-process time box per measurement
    warmup: float
    mib: int  # upload and download size for the memory rows
    wrk_seconds: float
    wrk_warmup: float


FULL = Settings(seconds=2.0, warmup=0.5, mib=256, wrk_seconds=5, wrk_warmup=1)
QUICK = Settings(seconds=0.3, warmup=0.1, mib=16, wrk_seconds=1, wrk_warmup=0)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _inprocess_rows(settings: Settings) -> dict[str, Row]:
    rows = {}
    for key, scenario in inprocess.SCENARIOS.items():
        row = rows[key] = Row(f"{scenario.label} (calls/s)", "rate")
        for column in COLUMNS:
            result = inprocess.measure(column, key, settings.seconds, settings.warmup)
            row.cells[column] = value = cell(result)
            shown = value if isinstance(value, str) else f"{value:,.1f} calls/s"
            _progress(f"  {key:<11} {column:<9} {shown}")
    return rows


def _memory_rows(settings: Settings) -> dict[str, Row]:
    size = f"{settings.mib} MiB"
    rows = {
        "upload-rss": Row(f"{size} upload: extra peak RSS", "bytes"),
        "upload-disk": Row(f"{size} upload: written to disk (write_bytes)", "bytes"),
        "upload-wchar": Row(f"{size} upload: passed to write() (wchar)", "bytes"),
        "upload-time": Row(f"{size} upload: time", "seconds"),
        "download-rss": Row(f"{size} download: extra peak RSS", "bytes"),
        "download-time": Row(f"{size} download: time", "seconds"),
    }
    fields = {
        "upload": (("rss", "extra_rss"), ("disk", "write_bytes"), ("wchar", "wchar")),
        "download": (("rss", "extra_rss"),),
    }
    for mode, wanted in fields.items():
        for column in COLUMNS:
            result = memory.measure(column, mode, settings.mib)
            if "error" in result:
                shown = str(result["error"])
            else:
                shown = (
                    f"extra peak RSS {result['extra_rss'] / MIB:.1f} MiB, "
                    f"write_bytes {result['write_bytes'] / MIB:.1f} MiB, "
                    f"{result['seconds']:.2f} s"
                )
            _progress(f"  {mode:<8} {column:<9} {shown}")
            for suffix, key in (*wanted, ("time", "seconds")):
                rows[f"{mode}-{suffix}"].cells[column] = cell(result, key)
    return rows


def _server_rows(settings: Settings) -> dict[str, Row]:
    rows = {
        "server-rps": Row("uvicorn + wrk -c50: requests/s", "rate"),
        "server-good": Row("uvicorn + wrk -c50: 2xx/3xx answers/s", "rate"),
        "server-p99": Row("uvicorn + wrk -c50: p99 latency", "ms"),
        "server-errors": Row("uvicorn + wrk -c50: errors", "count"),
    }
    for column in COLUMNS:
        result = server.run(column, settings.wrk_seconds, settings.wrk_warmup)
        if isinstance(result, str):
            shown = result
        else:
            shown = (
                f"{result.requests_per_s:,.0f} req/s, p99 {result.p99_ms:.1f} ms, "
                f"{result.non_2xx_3xx} non-2xx/3xx, {result.socket_errors} socket errors"
            )
        _progress(f"  {column:<9} {shown}")
        if isinstance(result, str):
            for row in rows.values():
                row.cells[column] = result
            continue
        rows["server-rps"].cells[column] = result.requests_per_s
        rows["server-good"].cells[column] = result.good_per_s
        rows["server-p99"].cells[column] = result.p99_ms
        rows["server-errors"].cells[column] = float(result.errors)
    return rows


def _preamble(settings: Settings, quick: bool, elapsed: float) -> list[str]:
    return [
        f"crossgate benchmark, {'QUICK smoke run' if quick else 'full run'}, "
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"took {elapsed:.0f} s",
        f"in-process: {settings.seconds:g} s per figure after {settings.warmup:g} s warm-up, "
        f"fresh process per adapter and scenario; memory: {settings.mib} MiB in 64 KiB pieces; "
        f"uvicorn (h11, 1 worker): wrk -t2 -c50 -d{settings.wrk_seconds:g}s "
        f"after a {settings.wrk_warmup:g} s warm-up",
    ]


NOTES = [
    "Ratios are crossgate divided by the column, for rates only (higher is better).",
    "Extra peak RSS: VmHWM reset (clear_refs) just before the request, minus VmRSS then.",
    "asgiref spools every request body to a temporary file before the app runs.",
    "uvicorn errors = non-2xx/3xx answers + socket errors, as wrk counts them "
    "(asgiref's are the 500s of asgiref #491).",
]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shrink every measurement")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    started = time.monotonic()
    rows: dict[str, Row] = {}
    _progress("== in-process, fake server")
    rows |= _inprocess_rows(settings)
    _progress("== memory and disk, fake server")
    rows |= _memory_rows(settings)
    _progress("== uvicorn + wrk")
    rows |= _server_rows(settings)
    report.check_targets(rows)
    preamble = _preamble(settings, args.quick, time.monotonic() - started)
    table = list(rows.values())
    print("\n".join(["", *preamble, "", report.text(table), "", *NOTES]), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "\n".join(
            [
                "# crossgate benchmark",
                "",
                *(line + "  " for line in preamble),
                "",
                report.markdown(table),
                "",
                *(f"- {note}" for note in NOTES),
                "",
            ]
        )
    )
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
