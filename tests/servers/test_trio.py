"""``hypercorn -k trio`` serving `WSGIToASGI`: a clear refusal, not "no running event loop".

crossgate's WSGIToASGI runs on asyncio only (issue 14 item 10). Under trio, lifespan startup
fails with a message that says so and names the fix, and a request (when the server skipped
lifespan) gets a 500 while the server's log says why.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crossgate.adapters.wsgi_to_asgi import ASYNCIO_ONLY
from tests.servers._servers import ServerProcess, running

pytestmark = pytest.mark.servers

pytest.importorskip("trio")

# hypercorn exits once lifespan startup failed; a bound on waiting for it, never asserted on.
EXIT_TIMEOUT = 20.0


def _hypercorn_trio(app: str) -> list[str]:
    # --workers 0 serves from this very process, so stopping it by PID leaves no child behind.
    return [
        *(sys.executable, "-m", "hypercorn", app, "--worker-class", "trio"),
        *("--bind", "127.0.0.1:0", "--workers", "0", "--graceful-timeout", "2"),
    ]


@pytest.fixture
def trio_server(tmp_path: Path) -> Iterator[ServerProcess]:
    app = "tests.servers.trio_apps:no_lifespan"
    process = ServerProcess(
        "hypercorn-trio", app, tmp_path / "hypercorn.log", command=_hypercorn_trio(app)
    )
    with running(process):
        yield process


def test_lifespan_startup_fails_with_a_clear_message(tmp_path: Path) -> None:
    app = "tests.servers.trio_apps:application"
    process = ServerProcess(
        "hypercorn-trio", app, tmp_path / "hypercorn.log", command=_hypercorn_trio(app)
    )
    try:
        process.process.wait(EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hypercorn kept running after a failed startup: {process.describe()}")
    finally:
        process.stop()
    assert process.process.returncode != 0, process.describe()
    assert ASYNCIO_ONLY in process.log(), process.describe()
    assert "no running event loop" not in process.log(), process.describe()


def test_a_request_gets_a_500_and_the_log_says_why(trio_server: ServerProcess) -> None:
    response = httpx.get(trio_server.base_url + "/", timeout=30.0)

    assert response.status_code == 500
    assert trio_server.wait_for_log(ASYNCIO_ONLY), trio_server.describe()
    assert "no running event loop" not in trio_server.log(), trio_server.describe()
    # The server keeps serving: the next request gets the same clear answer.
    assert httpx.get(trio_server.base_url + "/", timeout=30.0).status_code == 500
    assert trio_server.process.poll() is None, trio_server.describe()
