"""The results table: absolute figures per contender, crossgate's ratios, and the targets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from bench.subproc import Cell

__all__ = ["COLUMNS", "Row", "check_targets", "markdown", "text"]

COLUMNS = ("native", "crossgate", "a2wsgi", "asgiref")
RATIOS = ("native", "a2wsgi", "asgiref")
MIB = 1024 * 1024

Kind = Literal["rate", "bytes", "seconds", "ms", "count"]


@dataclass
class Row:
    label: str
    kind: Kind
    cells: dict[str, Cell] = field(default_factory=dict)
    target: str = ""
    met: bool | None = None

    def number(self, column: str) -> float | None:
        value = self.cells.get(column)
        return value if isinstance(value, float) else None

    def ratio(self, column: str) -> float | None:
        """crossgate / ``column``, for rates only (higher is better)."""
        ours, theirs = self.number("crossgate"), self.number(column)
        if self.kind != "rate" or ours is None or not theirs:
            return None
        return ours / theirs


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


def check_targets(rows: dict[str, Row]) -> None:
    for key, (target, check) in TARGETS.items():
        row = rows.get(key)
        if row is not None:
            row.target, row.met = target, check(row)


def _bytes(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    if n < MIB:
        return f"{n / 1024:.1f} KiB"
    return f"{n / MIB:.1f} MiB"


def _figure(row: Row, column: str) -> str:
    value = row.cells.get(column)
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if row.kind == "rate":
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    if row.kind == "bytes":
        return _bytes(value)
    if row.kind == "seconds":
        return f"{value:.2f} s"
    if row.kind == "ms":
        return f"{value:.1f} ms"
    return f"{value:,.0f}"


def _verdict(row: Row) -> str:
    if not row.target:
        return ""
    return {True: "met", False: "NOT MET", None: "n/a"}[row.met]


HEADER = (
    "scenario",
    *COLUMNS,
    *(f"cg/{c}" for c in RATIOS),
    "target",
    "verdict",
)


def _cells(rows: list[Row]) -> list[list[str]]:
    table = []
    for row in rows:
        ratios = [row.ratio(c) for c in RATIOS]
        table.append(
            [
                row.label,
                *(_figure(row, c) for c in COLUMNS),
                *("-" if r is None else f"{r:.2f}x" for r in ratios),
                row.target,
                _verdict(row),
            ]
        )
    return table


def text(rows: list[Row]) -> str:
    table = [list(HEADER), *_cells(rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    numeric = range(1, 1 + len(COLUMNS) + len(RATIOS))

    def render(line: list[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(table[0]), rule, *(render(line) for line in table[1:])])


def markdown(rows: list[Row]) -> str:
    align = ["---", *("---:" for _ in range(len(COLUMNS) + len(RATIOS))), "---", "---"]
    lines = [HEADER, align, *_cells(rows)]
    return "\n".join(
        "| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines
    )
