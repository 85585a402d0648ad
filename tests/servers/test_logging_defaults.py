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
    server_command,
)

pytestmark = pytest.mark.servers

# "[2026-12-07 17:36:44 +0000] [19764] [ERROR] crossgate: the WSGI app raised RuntimeError ..."
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


# The configurations docs/servers.md shows (and includes from these very files).
SNIPPETS = Path(__file__).resolve().parents[2] / "docs" / "snippets"


def test_uvicorn_log_config_from_the_docs(tmp_path: Path) -> None:
    app = "tests.servers.logging_apps:wsgi_in_asgi"
    command = [
        *server_command("uvicorn", app),
        *("--log-config", str(SNIPPETS / "uvicorn-logging.json")),
    ]
    process = ServerProcess("uvicorn", app, tmp_path / "uvicorn.log", command=command)
    with running(process):
        response = httpx.get(process.base_url + "/broken", timeout=10.0)
        assert response.status_code == 500
        assert process.wait_for_log("the WSGI app broke on purpose", timeout=10.0)
        # "2026-12-07 17:36:44,123 ERROR:    crossgate: the WSGI app raised RuntimeError ..."
        line = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ERROR:\s+crossgate: the WSGI app raised"
        assert re.search(line, process.log(), re.M), process.describe()
        # uvicorn's own lines take the same format.
        assert re.search(r"^\d{4}-\S+ \S+ INFO:\s+uvicorn.error: ", process.log(), re.M)


def test_gunicorn_log_config_from_the_docs(tmp_path: Path) -> None:
    app = "tests.servers.logging_apps:asgi_in_wsgi"
    command = [
        *gunicorn_command(app),
        *("--log-config-json", str(SNIPPETS / "gunicorn-logging.json")),
    ]
    process = ServerProcess(
        "gunicorn", app, tmp_path / "gunicorn.log", command=command, listening=GUNICORN_LISTENING
    )
    with running(process):
        response = httpx.get(process.base_url + "/broken", timeout=10.0)
        assert response.status_code == 500
        assert process.wait_for_log("the ASGI app broke on purpose", timeout=10.0)
        line = r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[ERROR\] crossgate: "
        assert re.search(line, process.log(), re.M), process.describe()
