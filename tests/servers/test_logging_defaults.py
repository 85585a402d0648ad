"""crossgate's log records under uvicorn's and gunicorn's default logging: level and time.

Both servers configure only their own loggers. Before crossgate's fallback handler
(``crossgate/_logging.py``) its records reached `logging.lastResort` and printed as the bare
message; these tests read the real servers' output for the stamped line.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.servers._servers import (
    GUNICORN_LISTENING,
    ServerProcess,
    gunicorn_command,
    running,
)

pytestmark = pytest.mark.servers

# "[2026-12-07 17:36:44 +0000] [19764] [ERROR] crossgate: the WSGI app failed ..."
STAMPED = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[ERROR\] crossgate: .*$", re.M
)


def _assert_stamped(process: ServerProcess, needle: str) -> None:
    response = httpx.get(process.base_url + "/broken", timeout=10.0)
    assert response.status_code == 500, process.describe()
    assert process.wait_for_log(needle, timeout=10.0), process.describe()
    assert STAMPED.search(process.log()), process.describe()


def test_uvicorn_default_logging(tmp_path: Path) -> None:
    app = "tests.servers.logging_apps:wsgi_in_asgi"
    with running(ServerProcess("uvicorn", app, tmp_path / "uvicorn.log")) as process:
        _assert_stamped(process, "the WSGI app broke on purpose")


def test_gunicorn_default_logging(tmp_path: Path) -> None:
    app = "tests.servers.logging_apps:asgi_in_wsgi"
    process = ServerProcess(
        "gunicorn",
        app,
        tmp_path / "gunicorn.log",
        command=gunicorn_command(app),
        listening=GUNICORN_LISTENING,
    )
    with running(process):
        _assert_stamped(process, "the ASGI app broke on purpose")
