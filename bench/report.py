"""Result tables: absolute figures per contender, crossgate's ratios, and the targets.

Every benchmark section returns one `Table`. Its `columns` are the contenders in display order
(one of them is always ``"crossgate"``); for each column named in `ratios` the table prints
``crossgate / column``. For rates higher is better; for times (``seconds``, ``ms``, ``us``)
lower is better; byte and count figures get no ratio. A section sets each row's printed
`target` and whether it was `met`; a missed target is reported, never turned into an exit status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bench.subproc import Cell

__all__ = ["Row", "Table", "markdown_table", "text_table"]

MIB = 1024 * 1024

Kind = Literal["rate", "bytes", "seconds", "ms", "us", "count"]
RATIO_KINDS = frozenset({"rate", "seconds", "ms", "us"})


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
        """crossgate / ``column`` for rates and times; ``None`` for bytes and counts."""
        ours, theirs = self.number("crossgate"), self.number(column)
        if self.kind not in RATIO_KINDS or ours is None or not theirs:
            return None
        return ours / theirs


@dataclass
class Table:
    title: str
    columns: tuple[str, ...]
    ratios: tuple[str, ...]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)


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
    if row.kind == "us":
        return f"{value:.2f} us" if value < 100 else f"{value:,.0f} us"
    return f"{value:,.0f}"


def _verdict(row: Row) -> str:
    if not row.target:
        return ""
    return {True: "met", False: "NOT MET", None: "n/a"}[row.met]


def _header(table: Table) -> list[str]:
    return ["scenario", *table.columns, *(f"cg/{c}" for c in table.ratios), "target", "verdict"]


def _cells(table: Table) -> list[list[str]]:
    lines = []
    for row in table.rows:
        ratios = [row.ratio(c) for c in table.ratios]
        lines.append(
            [
                row.label,
                *(_figure(row, c) for c in table.columns),
                *("-" if r is None else f"{r:.2f}x" for r in ratios),
                row.target,
                _verdict(row),
            ]
        )
    return lines


def text_table(table: Table) -> str:
    """``table`` as aligned plain text, title first and notes last."""
    header = _header(table)
    lines = [header, *_cells(table)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numeric = range(1, 1 + len(table.columns) + len(table.ratios))

    def render(line: list[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [render(lines[0]), rule, *(render(line) for line in lines[1:])]
    return "\n".join([f"== {table.title}", *body, *(f"  * {note}" for note in table.notes)])


def markdown_table(table: Table) -> str:
    """``table`` as a Markdown section: a heading, the table, then the notes as a list."""
    numeric = len(table.columns) + len(table.ratios)
    align = ["---", *("---:" for _ in range(numeric)), "---", "---"]
    lines = [_header(table), align, *_cells(table)]
    rendered = [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines
    ]
    return "\n".join([f"## {table.title}", "", *rendered, "", *(f"- {n}" for n in table.notes)])
