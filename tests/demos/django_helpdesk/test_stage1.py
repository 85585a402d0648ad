"""Stage 1: the same `wsgi.py` application in `WSGIToASGI`, under uvicorn and granian.

The user scenarios are stage 0's, unchanged. On top: the CSV export streams row by row (Django's
own ASGI handler would read the sync generator whole first), and the attachment goes out through
`http.response.pathsend` under granian, which offers it, and streamed under uvicorn, which does
not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo_projects.django_helpdesk.tickets.demo_data import BINARY_ATTACHMENT, TICKET_COUNT
from tests.demos.django_helpdesk import _scenarios
from tests.demos.django_helpdesk.conftest import HelpdeskServer, StartHelpdesk

pytestmark = pytest.mark.servers

PROBE_APP = "tests.demos.django_helpdesk.probe_app:application"
CSV_HEADER = "id,title,status,created,comments"
WAIT = 10.0


@pytest.fixture(scope="module")
def export_gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The export's test gate (`HELPDESK_EXPORT_GATE`), open unless a test closes it."""
    gate = tmp_path_factory.mktemp("export-gate") / "gate"
    gate.touch()
    yield gate
    gate.touch()


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def stage1(
    request: pytest.FixtureRequest, start_helpdesk: StartHelpdesk, export_gate: Path
) -> HelpdeskServer:
    """Stage 1's own entry point, under each server."""
    server: str = request.param
    return start_helpdesk(1, server, env={"HELPDESK_EXPORT_GATE": str(export_gate)})


def test_pages(stage1: HelpdeskServer) -> None:
    with stage1.client() as client:
        _scenarios.check_pages(client, stage=1)


def test_comment_form_with_csrf(stage1: HelpdeskServer) -> None:
    with stage1.client() as client:
        _scenarios.check_comment_form(client, author=f"stage1-{stage1.server}")


def test_login_then_csv_export(stage1: HelpdeskServer) -> None:
    with stage1.client() as client:
        _scenarios.check_login_and_export(client)


def test_attachments(stage1: HelpdeskServer, helpdesk_data_dir: Path) -> None:
    with stage1.client() as client:
        _scenarios.check_attachments(client, helpdesk_data_dir)


def test_admin(stage1: HelpdeskServer) -> None:
    with stage1.client() as client:
        _scenarios.check_admin(client)


def test_slow_view(stage1: HelpdeskServer) -> None:
    with stage1.client() as client:
        _scenarios.check_slow(client)


def wait_for(path: Path) -> bool:
    deadline = time.monotonic() + WAIT
    while not path.exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def test_csv_export_streams(stage1: HelpdeskServer, export_gate: Path) -> None:
    """The client reads the first rows while the generator is held before the second one.

    The gate is closed (its file removed): the export yields its header and first row, then
    waits for the file. Only after reading those rows does the test create it; a server that
    buffered the body would deliver nothing until the generator finished (`.done`), and the
    reads below would time out instead.
    """
    waiting = export_gate.with_name("gate.waiting")
    done = export_gate.with_name("gate.done")
    for marker in (export_gate, waiting, done):
        marker.unlink(missing_ok=True)
    try:
        with stage1.client() as client:
            _scenarios.login(client, "demo", "demo", path="/accounts/login/")
            with client.stream("GET", "/tickets/export.csv") as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                assert next(lines) == CSV_HEADER
                assert next(lines).startswith("1,")
                # The generator has not produced the last row: it waits at the gate.
                assert not done.exists()
                assert wait_for(waiting), stage1.describe()
                export_gate.touch()
                rest = list(lines)
        assert [int(line.partition(",")[0]) for line in rest] == list(range(2, TICKET_COUNT + 1))
        assert done.exists()
    finally:
        export_gate.touch()


def probe_line(server: HelpdeskServer, path: str) -> dict[str, str]:
    """The probe's log line for `path` (see `probe_app.py`), as a dict."""
    needle = f"probe path={path} "
    assert server.wait_for_log(needle), server.describe()
    line = next(line for line in server.log().splitlines() if line.startswith(needle))
    return dict(field.split("=", 1) for field in line.removeprefix("probe ").split(" "))


def test_attachment_goes_out_through_pathsend_under_granian(
    start_helpdesk: StartHelpdesk, helpdesk_data_dir: Path
) -> None:
    """granian offers `http.response.pathsend`: the 2 MiB file is handed over by path.

    The file is larger than `WSGIToASGI`'s send buffer (256 KiB), so a streamed body would be
    several `http.response.body` messages; the probe sees one `pathsend` and nothing else.
    """
    server = start_helpdesk(1, "granian", app=PROBE_APP)
    with server.client() as client:
        response = client.get("/tickets/2/attachment/")
    assert response.status_code == 200
    assert response.content == (helpdesk_data_dir / "media" / BINARY_ATTACHMENT).read_bytes()
    probe = probe_line(server, "/tickets/2/attachment/")
    assert "http.response.pathsend" in probe["offered"].split(",")
    assert probe["sent"] == "http.response.start,http.response.pathsend"


def test_attachment_streams_under_uvicorn(
    start_helpdesk: StartHelpdesk, helpdesk_data_dir: Path
) -> None:
    """uvicorn offers no pathsend: the same file streams as body messages, intact."""
    server = start_helpdesk(1, "uvicorn", app=PROBE_APP)
    with server.client() as client:
        response = client.get("/tickets/2/attachment/")
    assert response.status_code == 200
    assert response.content == (helpdesk_data_dir / "media" / BINARY_ATTACHMENT).read_bytes()
    probe = probe_line(server, "/tickets/2/attachment/")
    assert "http.response.pathsend" not in probe["offered"].split(",")
    start, _, bodies = probe["sent"].partition(",")
    assert start == "http.response.start"
    kind, _, count = bodies.partition("*")
    assert kind == "http.response.body"
    assert int(count) > 1
