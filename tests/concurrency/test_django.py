"""Thread-sensitive calls share Django's connection: proven on SQLite in a separate process.

The probe (``tests/concurrency/django_project/probe.py``) runs in its own interpreter, so its
Django settings never meet the ones other tests configure in this process. Each scenario opens
one ``transaction.atomic`` and writes through crossgate's ``sync_to_async(...,
thread_sensitive=True)`` and through Django's async ORM (asgiref's thread-sensitive calls). Had
crossgate picked another thread, it would have used another SQLite connection: that write
would wait on the first connection's lock and fail, and the rollback would not undo it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _probe(tmp_path: Path, *, middleware: bool) -> dict[str, Any]:
    env = {
        **os.environ,
        "CROSSGATE_TEST_DB": str(tmp_path / "notes.sqlite3"),
        "DJANGO_SETTINGS_MODULE": "tests.concurrency.django_project.settings",
    }
    if middleware:
        env["CROSSGATE_TEST_MIDDLEWARE"] = "1"
    else:
        env.pop("CROSSGATE_TEST_MIDDLEWARE", None)
    proc = subprocess.run(  # bounded by the timeout; the child is killed when it runs out
        [sys.executable, "-m", "tests.concurrency.django_project.probe"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


@pytest.fixture(scope="module", params=[False, True], ids=["no-middleware", "sync-middleware"])
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _probe(tmp_path_factory.mktemp("django"), middleware=request.param)


def _one_thread_one_connection(scenario: dict[str, Any]) -> int:
    steps = scenario["steps"]
    assert len({s["thread"] for s in steps}) == 1, steps
    assert len({s["connection"] for s in steps}) == 1, steps
    # Both writes counted inside the block, both undone by its rollback.
    assert scenario["inside"] == 2
    assert scenario["after"] == 0
    thread: int = steps[0]["thread"]
    return thread


def test_async_view_in_a_django_request_uses_the_requests_thread(report: Any) -> None:
    scenario = report["request_async"]
    thread = _one_thread_one_connection(scenario)
    inside = [s["atomic"] for s in scenario["steps"] if s["label"] != "exit"][:-1]
    assert all(inside)
    # The thread asgiref picks for Django's own thread-sensitive calls in this request.
    assert scenario["django_thread"] == thread
    if scenario["middleware_thread"] is not None:
        assert scenario["middleware_thread"] == thread
    assert thread != report["main_thread"]


def test_sync_view_calling_async_code_keeps_its_thread_and_the_servers_loop(
    report: Any,
) -> None:
    scenario = report["request_sync"]
    _one_thread_one_connection(scenario)
    assert scenario["steps"][0]["label"] == "view"
    # async_to_sync in a Django sync view runs on the server's loop, as asgiref would.
    assert scenario["loop"] == scenario["server_loop"]


@pytest.mark.parametrize("outer", ["outer_crossgate", "outer_asgiref"])
def test_under_an_outer_async_to_sync_the_calling_thread_does_the_work(
    report: Any, outer: str
) -> None:
    thread = _one_thread_one_connection(report[outer])
    assert thread == report["main_thread"]
    assert all(s["atomic"] for s in report[outer]["steps"][:-1])


def test_outside_any_context_one_thread_and_one_per_context(report: Any) -> None:
    steps = {s["label"]: s for s in report["outside"]["steps"]}
    assert steps["default 1"]["thread"] == steps["default 2"]["thread"]
    assert steps["default 1"]["connection"] == steps["default 2"]["connection"]
    assert steps["context 1"]["thread"] == steps["context 2"]["thread"]
    assert steps["context 1"]["thread"] != steps["default 1"]["thread"]
