"""WSGIToASGI: a WSGI app inside an ASGI server, beside a2wsgi, asgiref and the native ASGI app.

In-process calls/s through a fake server, peak memory and disk for big uploads and downloads,
and hello world under uvicorn loaded with wrk.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from bench import inprocess, memory, server
from bench.report import Row, Table, text_table
from bench.subproc import cell, progress

__all__ = ["section"]

COLUMNS = ("native", "crossgate", "a2wsgi", "asgiref")
RATIOS = ("native", "a2wsgi", "asgiref")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    seconds: float  # in-process time box per measurement
    warmup: float
    mib: int  # upload and download size for the memory rows
    wrk_seconds: float
    wrk_warmup: float


FULL = Settings(seconds=2.0, warmup=0.5, mib=256, wrk_seconds=5, wrk_warmup=1)
QUICK = Settings(seconds=0.3, warmup=0.1, mib=16, wrk_seconds=1, wrk_warmup=0)


def _inprocess_rows(settings: Settings) -> dict[str, Row]:
    rows = {}
    for key, scenario in inprocess.SCENARIOS.items():
        row = rows[key] = Row(f"{scenario.label} (calls/s)", "rate")
        for column in COLUMNS:
            result = inprocess.measure(column, key, settings.seconds, settings.warmup)
            row.cells[column] = value = cell(result)
            shown = value if isinstance(value, str) else f"{value:,.1f} calls/s"
            progress(f"  {key:<11} {column:<9} {shown}")
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
            progress(f"  {mode:<8} {column:<9} {shown}")
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
        progress(f"  {column:<9} {shown}")
        if isinstance(result, str):
            for row in rows.values():
                row.cells[column] = result
            continue
        rows["server-rps"].cells[column] = result.requests_per_s
        rows["server-good"].cells[column] = result.good_per_s
        rows["server-p99"].cells[column] = result.p99_ms
        rows["server-errors"].cells[column] = float(result.errors)
    return rows


NOTES = [
    "Extra peak RSS: VmHWM reset (clear_refs) just before the request, minus VmRSS then.",
    "asgiref spools every request body to a temporary file before the app runs.",
    "uvicorn errors = non-2xx/3xx answers + socket errors, as wrk counts them "
    "(asgiref's are the 500s of asgiref #491).",
]


def _at_least(row: Row, column: str, factor: float) -> bool | None:
    ratio = row.ratio(column)
    return None if ratio is None else ratio >= factor


def _at_most(row: Row, limit: float) -> bool | None:
    ours = row.number("crossgate")
    return None if ours is None else ours <= limit


def _all(*checks: bool | None) -> bool | None:
    return None if None in checks else all(checks)


# Row key -> (target as printed, check).
TARGETS: dict[str, tuple[str, Callable[[Row], bool | None]]] = {
    "hello-c1": (">= 2x a2wsgi", lambda r: _at_least(r, "a2wsgi", 2)),
    "hello-c50": (">= 2x a2wsgi", lambda r: _at_least(r, "a2wsgi", 2)),
    "1mib-4k": (">= 4x a2wsgi", lambda r: _at_least(r, "a2wsgi", 4)),
    "post-10mib": (
        ">= 5x a2wsgi, >= 1.5x asgiref",
        lambda r: _all(_at_least(r, "a2wsgi", 5), _at_least(r, "asgiref", 1.5)),
    ),
    "upload-rss": ("crossgate <= 8 MiB", lambda r: _at_most(r, 8 * MIB)),
    "upload-disk": ("crossgate 0 B", lambda r: _at_most(r, 0)),
    "upload-wchar": ("crossgate 0 B", lambda r: _at_most(r, 0)),
    "download-rss": ("crossgate <= 8 MiB", lambda r: _at_most(r, 8 * MIB)),
    "server-rps": (">= 2x a2wsgi", lambda r: _at_least(r, "a2wsgi", 2)),
    "server-errors": ("crossgate 0", lambda r: _at_most(r, 0)),
}


def section(quick: bool) -> Table:
    """Every WSGIToASGI measurement, each in a fresh child process."""
    settings = QUICK if quick else FULL
    rows: dict[str, Row] = {}
    progress("== WSGIToASGI: in-process, fake server")
    rows |= _inprocess_rows(settings)
    progress("== WSGIToASGI: memory and disk, fake server")
    rows |= _memory_rows(settings)
    progress("== WSGIToASGI: uvicorn + wrk")
    rows |= _server_rows(settings)
    for key, (target, check) in TARGETS.items():
        row = rows.get(key)
        if row is not None:
            row.target, row.met = target, check(row)
    method = (
        f"in-process: {settings.seconds:g} s per figure after {settings.warmup:g} s warm-up, "
        f"fresh process per adapter and scenario; memory: {settings.mib} MiB in 64 KiB pieces; "
        f"uvicorn (h11, 1 worker): wrk -t2 -c50 -d{settings.wrk_seconds:g}s "
        f"after a {settings.wrk_warmup:g} s warm-up."
    )
    return Table(
        "WSGIToASGI: a WSGI app in an ASGI server",
        COLUMNS,
        RATIOS,
        list(rows.values()),
        [method, *NOTES],
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wsgi_to_asgi", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shrink every measurement")
    print(text_table(section(parser.parse_args().quick)))


if __name__ == "__main__":
    main()
