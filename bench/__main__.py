"""``python -m bench [--quick] [SECTION ...]``: every measurement, one table per section.

The tables are printed and also written to bench/results/latest.md. Benchmarks are not tests:
a missed target is reported in its table, never turned into a failing exit status.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import time

from bench.report import Table, markdown_table, text_table
from bench.subproc import ROOT, progress

RESULTS = ROOT / "bench" / "results" / "latest.md"

# Section name -> module with `section(quick: bool) -> Table`, in the order they run.
SECTIONS = {
    "wsgi-to-asgi": "bench.wsgi_to_asgi",
    "asgi-to-wsgi": "bench.asgi_to_wsgi",
    "concurrency": "bench.concurrency",
    "routing": "bench.routing",
    "middleware": "bench.middleware",
    "demo-h2": "bench.demo_h2",
    "upload-storm": "bench.upload_storm",
    # last: it writes bench/data/deploy.json, the data of the docs' Benchmarks page
    "deploy": "bench.deploy",
}


def _preamble(quick: bool, elapsed: float) -> list[str]:
    return [
        f"crossgate benchmark, {'QUICK smoke run' if quick else 'full run'}, "
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"took {elapsed:.0f} s",
        "Ratios are crossgate divided by the column: for rates higher is better, "
        "for times lower is better.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shrink every measurement")
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=", ".join(SECTIONS))
    args = parser.parse_args()
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    chosen = args.sections or list(SECTIONS)
    started = time.monotonic()
    tables: list[Table] = []
    for name in chosen:
        progress(f"=== section {name}")
        module = importlib.import_module(SECTIONS[name])
        tables.append(module.section(args.quick))
    preamble = _preamble(args.quick, time.monotonic() - started)
    print("\n\n".join(["\n".join(preamble), *(text_table(t) for t in tables)]), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "\n\n".join(
            [
                "# crossgate benchmark",
                "\n".join(line + "  " for line in preamble),
                *(markdown_table(t) for t in tables),
            ]
        )
        + "\n"
    )
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
