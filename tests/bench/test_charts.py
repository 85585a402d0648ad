"""The Benchmarks page's renderer draws its charts and tables from committed data alone."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from bench.charts import render

FIXTURE = Path(__file__).with_name("deploy-fixture.json")


def test_render_writes_charts_and_tables_from_the_data(tmp_path: Path) -> None:
    record = json.loads(FIXTURE.read_text())
    requests_svg, share_svg, tables = render(FIXTURE, tmp_path / "img", tmp_path / "deploy.md")

    for chart in (requests_svg, share_svg):
        root = ET.parse(chart).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        # Text is kept as text: the server labels and the date are in the file.
        text = chart.read_text()
        assert record["date"] in text
        for entry in record["servers"]:
            assert entry["label"] in text
    assert "crossgate" in requests_svg.read_text()

    markdown = tables.read_text()
    granian, gunicorn = record["servers"]
    assert f"**{granian['share']['median']:.2f}** of floor" in markdown
    assert f"**{gunicorn['share']['median']:.2f}** of native" in markdown
    assert record["machine"]["cpu_model"] in markdown
    assert f"| {record['versions']['crossgate']} |" in markdown
    assert "quick smoke run" in markdown


def test_render_is_reproducible(tmp_path: Path) -> None:
    first = render(FIXTURE, tmp_path / "a", tmp_path / "a.md")
    second = render(FIXTURE, tmp_path / "b", tmp_path / "b.md")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
