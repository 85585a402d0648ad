"""``python -m bench.charts``: the Benchmarks page's charts and tables, from committed data.

Reads ``bench/data/deploy.json`` (written by ``make bench``, section ``deploy``) and writes
``docs/img/bench/requests.svg`` (requests/s per server and contender, with the spread of the
rounds), ``docs/img/bench/share.svg`` (crossgate as a share of the floor or of the native app)
and ``bench/data/deploy.md`` (the same figures as Markdown tables, included by
``docs/benchmarks.md``). Needs matplotlib only, no server and no network: it runs alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from matplotlib import rc_context
from matplotlib.figure import Figure

from bench.subproc import ROOT

__all__ = ["render"]

DATA = ROOT / "bench" / "data" / "deploy.json"
IMAGES = ROOT / "docs" / "img" / "bench"
TABLES = ROOT / "bench" / "data" / "deploy.md"

CONTENDERS = ("native", "floor", "crossgate", "a2wsgi", "asgiref")
LABELS = {
    "native": "native app",
    "floor": "floor: one run_in_executor hop",
    "crossgate": "crossgate",
    "a2wsgi": "a2wsgi",
    "asgiref": "asgiref",
}
COLOURS = {
    "native": "#9e9e9e",
    "floor": "#616161",
    "crossgate": "#1565c0",
    "a2wsgi": "#ef6c00",
    "asgiref": "#2e7d32",
}


def _subtitle(record: dict[str, Any]) -> str:
    machine, method = record["machine"], record["method"]
    before = ", ".join(f"{x:g}" for x in machine["load_before"])
    after = ", ".join(f"{x:g}" for x in machine["load_after"])
    quick = "QUICK SMOKE RUN, " if record["quick"] else ""
    note = f"\n{record['note']}" if record.get("note") else ""
    return (
        f"{quick}{record['date']}, {machine['cpu_model']}, {machine['cores']} cores, "
        f"Python {record['versions']['python']}\n{method['wrk']}, median of "
        f"{method['rounds']} paired rounds; load average before {before}, after {after}{note}"
    )


def _rps(entry: dict[str, Any], contender: str) -> tuple[float, float, float] | None:
    """Median, lowest and highest requests/s over the rounds, or None if never measured."""
    data = entry["contenders"].get(contender)
    if data is None or "error" in data["summary"]:
        return None
    rates = [turn["rps"] for turn in data["turns"] if "error" not in turn]
    return float(data["summary"]["rps"]), min(rates), max(rates)


def _requests_chart(record: dict[str, Any], path: Path) -> None:
    servers = record["servers"]
    figure = Figure(figsize=(10, 1.1 + 1.15 * len(servers)), layout="constrained")
    axes = figure.add_subplot()
    bar = 0.16
    highest = 0.0
    for index, entry in enumerate(reversed(servers)):
        present = [c for c in CONTENDERS if c in entry["contenders"]]
        for slot, contender in enumerate(present):
            figures = _rps(entry, contender)
            if figures is None:
                continue
            median, low, high = figures
            highest = max(highest, high)
            y = index + (len(present) / 2 - slot - 0.5) * bar
            axes.barh(
                y,
                median,
                height=bar * 0.9,
                color=COLOURS[contender],
                xerr=[[median - low], [high - median]],
                error_kw={"elinewidth": 0.8, "capsize": 2},
                label=LABELS[contender],
            )
            axes.text(high, y, f" {median:,.0f}", va="center", fontsize=7)
    axes.set_xlim(0, highest * 1.12 or 1)
    axes.set_yticks(range(len(servers)), [e["label"] for e in reversed(servers)], fontsize=8)
    axes.set_xlabel(
        "successful (2xx) answers per second; bar: median of the rounds, whisker: lowest to highest"
    )
    axes.grid(axis="x", alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    order = [LABELS[c] for c in CONTENDERS if LABELS[c] in unique]
    axes.legend([unique[label] for label in order], order, fontsize=8, loc="lower right")
    figure.suptitle("Hello world: requests per second, by server and contender", fontsize=11)
    axes.set_title(_subtitle(record), fontsize=7)
    _save(figure, path)


def _share_chart(record: dict[str, Any], path: Path) -> None:
    rows = [e for e in record["servers"] if e["share"] is not None]
    figure = Figure(figsize=(10, 1.3 + 0.45 * len(rows)), layout="constrained")
    axes = figure.add_subplot()
    for index, entry in enumerate(reversed(rows)):
        share = entry["share"]
        axes.barh(
            index,
            share["median"],
            height=0.6,
            color=COLOURS["crossgate"],
            xerr=[[share["median"] - share["min"]], [share["max"] - share["median"]]],
            error_kw={"elinewidth": 0.8, "capsize": 3},
        )
        axes.text(
            share["max"] + 0.01,
            index,
            f"{share['median']:.2f} of {entry['reference']}",
            va="center",
            fontsize=8,
        )
    axes.axvline(1.0, color="black", linewidth=0.8)
    # Room for the label right of the highest whisker (a disturbed round can pass 1.0).
    axes.set_xlim(0, max(1.25, *(e["share"]["max"] + 0.3 for e in rows)))
    axes.set_yticks(range(len(rows)), [e["label"] for e in reversed(rows)], fontsize=8)
    axes.set_xlabel(
        "crossgate's requests/s as a share of the floor (ASGI servers) or of the native WSGI "
        "app (gunicorn)\nbar: median of the rounds' paired ratios; whisker: lowest to highest",
        fontsize=8,
    )
    axes.grid(axis="x", alpha=0.3)
    figure.suptitle("crossgate as a share of what no adapter can beat", fontsize=11)
    axes.set_title(_subtitle(record), fontsize=7)
    _save(figure, path)


def _save(figure: Figure, path: Path) -> None:
    # Text stays text and ids are seeded, so the same data gives the same file.
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "crossgate"}):
        figure.savefig(path, format="svg", metadata={"Date": None})


def _cell(entry: dict[str, Any], contender: str, key: str, unit: str = "") -> str:
    data = entry["contenders"].get(contender)
    if data is None:
        return ""
    summary = data["summary"]
    if "error" in summary:
        return str(summary["error"]).replace("|", "/")
    value = float(summary[key])
    return f"{value:,.0f}{unit}" if key == "rps" else f"{value:.1f}{unit}"


def _ratio(entry: dict[str, Any], contender: str) -> str:
    ours, theirs = _rps(entry, "crossgate"), _rps(entry, contender)
    if ours is None or theirs is None:
        return ""
    return f"{ours[0] / theirs[0]:.2f}x"


def tables(record: dict[str, Any]) -> str:
    """The figures as Markdown: conditions, requests/s with ratios, p99, versions."""
    machine, method = record["machine"], record["method"]
    lines = [
        f"Measured {record['date']}"
        + (" (**a quick smoke run, not a measurement**)" if record["quick"] else "")
        + f" on {machine['cpu_model']}, {machine['cores']} cores, {machine['system']}; "
        f"load average (1, 5, 15 min) before {tuple(machine['load_before'])}, "
        f"after {tuple(machine['load_after'])}; `{method['wrk']}` per turn, "
        f"{method['rounds']} rounds after a {method['warmup']:g} s warm-up, "
        f"{method['minutes']:g} minutes in all.",
    ]
    if record.get("note"):
        lines += ["", f"Conditions: {record['note']}"]
    lines += [
        "",
        "| server | native | floor | crossgate | a2wsgi | asgiref | crossgate share "
        "(paired median, range) | crossgate / a2wsgi | crossgate / asgiref | load average "
        "at start |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for entry in record["servers"]:
        share = entry["share"]
        shown = (
            ""
            if share is None
            else f"**{share['median']:.2f}** of {entry['reference']} "
            f"({share['min']:.2f} to {share['max']:.2f})"
        )
        cells = [_cell(entry, c, "rps") for c in CONTENDERS]
        ratios = [_ratio(entry, "a2wsgi"), _ratio(entry, "asgiref")]
        load = f"{entry['load_at_start'][0]:g}" if "load_at_start" in entry else ""
        lines.append("| " + " | ".join([entry["label"], *cells, shown, *ratios, load]) + " |")
    lines += [
        "",
        "p99 latency in ms (median of the rounds); in brackets, the error answers and socket "
        "errors of all rounds, where there were any:",
        "",
        "| server | native | floor | crossgate | a2wsgi | asgiref |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for entry in record["servers"]:
        cells = [_cell(entry, c, "p99_ms") for c in CONTENDERS]
        for index, contender in enumerate(CONTENDERS):
            errors = entry["contenders"].get(contender, {}).get("summary", {}).get("errors", 0)
            if errors:
                cells[index] += f" ({errors:,} errors)"
        lines.append("| " + " | ".join([entry["label"], *cells]) + " |")
    versions = record["versions"]
    lines += [
        "",
        "| " + " | ".join(versions) + " |",
        "|" + "---|" * len(versions),
        "| " + " | ".join(versions.values()) + " |",
        "",
        "Commands (`APP` is `bench.server_apps:<contender>` for the ASGI servers and "
        "`bench.a2w_server_apps:<contender>` for gunicorn):",
        "",
        *(f"- {e['label']}: `{e['command']}`" for e in record["servers"]),
    ]
    return "\n".join(lines) + "\n"


def render(data: Path = DATA, images: Path = IMAGES, markdown: Path = TABLES) -> list[Path]:
    """Draw the charts and write the tables for the record in ``data``; return the files."""
    record = json.loads(data.read_text())
    images.mkdir(parents=True, exist_ok=True)
    written = [images / "requests.svg", images / "share.svg", markdown]
    _requests_chart(record, written[0])
    _share_chart(record, written[1])
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(tables(record))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.charts", description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA, help="the deploy section's JSON")
    parser.add_argument("--images", type=Path, default=IMAGES, help="where the SVGs go")
    parser.add_argument("--markdown", type=Path, default=TABLES, help="where the tables go")
    args = parser.parse_args()
    for path in render(args.data, args.images, args.markdown):
        print(f"written {path}")


if __name__ == "__main__":
    main()
