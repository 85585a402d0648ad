"""Fixtures that serve the test apps with each real server; see ``_servers.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from tests.servers._servers import SERVERS, ServerProcess


@pytest.fixture(scope="module", params=SERVERS)
def server_name(request: pytest.FixtureRequest) -> str:
    """Each server test module runs every scenario under each server."""
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def start_server(
    server_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], ServerProcess]]:
    """Factory: ``start_server("module:attr")`` serves that app with the current server.

    Every server it started is stopped when the module's tests for this server are done.
    """
    # An ExitStack stops every process even if stopping one of them raises.
    with ExitStack() as stack:

        def start(app: str) -> ServerProcess:
            log_dir = tmp_path_factory.mktemp(f"{server_name}-{app.partition(':')[0]}")
            process = ServerProcess(server_name, app, log_dir / f"{server_name}.log")
            # Registered before the wait: a server that fails to start is stopped too.
            stack.callback(process.stop)
            process.wait_until_ready()
            return process

        yield start
