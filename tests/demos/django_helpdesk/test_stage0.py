"""Stage 0: the legacy project as users run it today, `wsgi.py` under gunicorn (sync, 2 workers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.demos.django_helpdesk import _scenarios
from tests.demos.django_helpdesk.conftest import HelpdeskServer, StartHelpdesk

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def stage0(start_helpdesk: StartHelpdesk) -> HelpdeskServer:
    return start_helpdesk(0)


def test_runs_under_gunicorn_sync_with_two_workers(stage0: HelpdeskServer) -> None:
    assert stage0.server == "gunicorn"
    assert "Using worker: sync" in stage0.log()
    # Both workers were up when the server answered; the fixture checks they exit with it.
    assert len(stage0.children) == 2


def test_pages(stage0: HelpdeskServer) -> None:
    with stage0.client() as client:
        _scenarios.check_pages(client, stage=0)


def test_comment_form_with_csrf(stage0: HelpdeskServer) -> None:
    with stage0.client() as client:
        _scenarios.check_comment_form(client, author="stage0-user")


def test_login_then_csv_export(stage0: HelpdeskServer) -> None:
    with stage0.client() as client:
        _scenarios.check_login_and_export(client)


def test_attachments(stage0: HelpdeskServer, helpdesk_data_dir: Path) -> None:
    with stage0.client() as client:
        _scenarios.check_attachments(client, helpdesk_data_dir)


def test_admin(stage0: HelpdeskServer) -> None:
    with stage0.client() as client:
        _scenarios.check_admin(client)


def test_slow_view(stage0: HelpdeskServer) -> None:
    with stage0.client() as client:
        _scenarios.check_slow(client)
