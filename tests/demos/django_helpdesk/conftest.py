"""Fixtures for the helpdesk demo: a seeded data directory and real server processes per stage.

`helpdesk_data_dir` (session) runs `python -m demo_projects.django_helpdesk prepare` once into
a temporary directory. `start_helpdesk` (module) starts a stage under a server with the same
command the demo's runner builds (`server_command`), on 127.0.0.1 port 0 (granian: a unix socket,
since it prints the port it was asked for rather than the one it bound), waits until it answers,
and stops every server it started by PID when the module is done, checking that the server's
child processes (gunicorn's and uvicorn's workers, granian's worker) went with it.

Django settings are process-global, so no test configures Django in the pytest process: every
request goes to a server process.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol
from unittest import mock

import httpx
import pytest

from demo_projects.django_helpdesk.__main__ import ServeOptions, entry_point, server_command
from tests.servers._servers import GUNICORN_LISTENING, REPO_ROOT, ServerProcess

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
POLL_INTERVAL = 0.05

# uvicorn: "Uvicorn running on http://127.0.0.1:PORT"; hypercorn: "Running on https://...".
# Both print the address the socket is bound to, so port 0 comes back resolved.
ASGI_LISTENING = re.compile(r"running on https?://127\.0\.0\.1:(\d+)", re.IGNORECASE)
# hypercorn with --quic-bind: "Running on https://127.0.0.1:PORT (QUIC)", the UDP port.
QUIC_LISTENING = re.compile(r"Running on https://127\.0\.0\.1:(\d+) \(QUIC\)")
# daphne: "Listening on TCP address 127.0.0.1:PORT", the port it bound.
DAPHNE_LISTENING = re.compile(r"Listening on TCP address 127\.0\.0\.1:(\d+)")


def prepare_data_dir(path: Path) -> subprocess.CompletedProcess[str]:
    """Run the demo's `prepare` into `path`, as a user would; fail the test with its output."""
    env = dict(os.environ, HELPDESK_DATA_DIR=str(path))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "demo_projects.django_helpdesk", "prepare"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"prepare failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def helpdesk_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with the migrated database, the seed data and the attachments.

    Shared by the whole session: tests may add comments, nothing deletes the seeded tickets.
    Ticket 1 carries `media/attachments/welcome.txt`, ticket 2 `media/attachments/diagnostics.bin`
    (about 2 MiB); users `demo`/`demo` and `admin`/`admin` exist.
    """
    path = tmp_path_factory.mktemp("helpdesk-data")
    prepare_data_dir(path)
    return path


def child_pids(pid: int) -> set[int]:
    """Every descendant of `pid` right now (Linux `/proc/PID/task/TID/children`)."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                text = (task / "children").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            for child in map(int, text.split()):
                if child not in found:
                    found.add(child)
                    pending.append(child)
    return found


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state follows the parenthesised command name: "PID (comm) S ...".
    return stat.rpartition(")")[2].split()[0] != "Z"


class HelpdeskServer(ServerProcess):
    """One stage of the demo served by one server, started from the runner's own command.

    `command` defaults to the runner's `server_command(options)`; `app` swaps the stage's entry
    point in it for another application. `client()` / `async_client()` return httpx clients
    aimed at it (through the unix socket for granian, trusting the certificate for TLS).
    `children` are the server's worker processes, recorded once it answered, so `stop` can
    check that none is left behind.
    """

    def __init__(
        self,
        options: ServeOptions,
        log_path: Path,
        *,
        env: Mapping[str, str],
        certificate: tuple[str, str] | None = None,
        app: str | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.options = options
        self.certificate = certificate
        self.children: set[int] = set()
        server = options.server_name
        listening = {"gunicorn": GUNICORN_LISTENING, "daphne": DAPHNE_LISTENING}.get(
            server, ASGI_LISTENING
        )
        if command is None:
            command = server_command(options, certificate=certificate)
        if app is not None:
            # The stage's command line, serving another application (a test wrapper).
            command = [app if part == entry_point(options.stage) else part for part in command]
        # ServerProcess copies os.environ when it starts the child: patch it for that moment.
        with mock.patch.dict(os.environ, env):
            super().__init__(
                server,
                app or entry_point(options.stage),
                log_path,
                command=command,
                listening=listening,
            )

    @property
    def scheme(self) -> str:
        return self.options.scheme

    @property
    def base_url(self) -> str:
        if self.options.uds is not None:
            # Any host works over a unix socket; this one is in ALLOWED_HOSTS.
            return f"{self.scheme}://localhost"
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self.options.tls else "ws"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def quic_port(self) -> int:
        """The UDP port hypercorn answers HTTP/3 on (``--http3``), from its log."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while (found := QUIC_LISTENING.search(self.log())) is None:
            if self.process.poll() is not None or time.monotonic() >= deadline:
                pytest.fail(f"no QUIC listener: {self.describe()}")
            time.sleep(POLL_INTERVAL)
        return int(found.group(1))

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx should verify the server with: its self-signed certificate under TLS."""
        if self.certificate is None:
            return True
        return ssl.create_default_context(cafile=self.certificate[0])

    def client(self) -> httpx.Client:
        """A client for this server, over HTTP/1.1 (cookies kept, redirects not followed)."""
        transport = httpx.HTTPTransport(uds=self.options.uds, verify=self.verify())
        return httpx.Client(base_url=self.base_url, transport=transport, timeout=15.0)

    def async_client(self, *, http2: bool = False) -> httpx.AsyncClient:
        """An async client for this server; `http2=True` speaks only HTTP/2 (h2c or ALPN h2)."""
        transport = httpx.AsyncHTTPTransport(
            uds=self.options.uds, verify=self.verify(), http1=not http2, http2=http2
        )
        return httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=15.0)

    def wait_until_ready(self) -> None:
        """Wait for the startup line (granian: its socket), then for a GET to be answered."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._bound():
            if self.process.poll() is not None or time.monotonic() >= deadline:
                pytest.fail(f"the server did not start listening: {self.describe()}")
            time.sleep(POLL_INTERVAL)
        with self.client() as client:
            while True:
                try:
                    client.get("/", timeout=5.0)
                except httpx.TransportError:
                    pass
                else:
                    break
                if self.process.poll() is not None or time.monotonic() >= deadline:
                    pytest.fail(f"the server did not answer a GET: {self.describe()}")
                time.sleep(POLL_INTERVAL)
        self.children = child_pids(self.process.pid)

    def _bound(self) -> bool:
        if self.options.uds is not None:
            # Our own probe: httpcore leaks the socket of a refused unix-socket connect, which
            # `filterwarnings=error` turns into a failure. The file appears before listen().
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(self.options.uds)
                except OSError:
                    return False
            return True
        found = self._listening.search(self.log())
        if found:
            self.port = int(found.group(1))
        return bool(self.port)

    def stop(self) -> None:
        """Stop by PID (see `ServerProcess.stop`), then check its workers exited with it."""
        self.children |= child_pids(self.process.pid)
        super().stop()
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(map(pid_alive, self.children)) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
        left = sorted(pid for pid in self.children if pid_alive(pid))
        if left:
            for pid in left:
                os.kill(pid, 9)
            pytest.fail(f"worker processes {left} outlived the server: {self.describe()}")


class StartHelpdesk(Protocol):
    """The `start_helpdesk` factory's signature."""

    def __call__(
        self,
        stage: int,
        server: str | None = None,
        *,
        workers: int | None = None,
        http2: bool = False,
        http3: bool = False,
        tls: bool = False,
        certificate: tuple[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        app: str | None = None,
    ) -> HelpdeskServer: ...


@pytest.fixture(scope="module")
def start_helpdesk(
    helpdesk_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartHelpdesk]:
    """Factory: `start_helpdesk(1, "uvicorn")` serves stage 1 under uvicorn on the seeded data.

    `env` adds environment variables for the server (e.g. `REDIS_URL`); `certificate`
    (`(certfile, keyfile)`) is required with `tls=True`; `app` ("module:attr") serves another
    application with the stage's command line (a test wrapper around the stage, say). Every
    server started is stopped when the module is done, even if a test failed.
    """
    # An ExitStack stops every process even if stopping one of them fails.
    with ExitStack() as stack:

        def start(
            stage: int,
            server: str | None = None,
            *,
            workers: int | None = None,
            http2: bool = False,
            http3: bool = False,
            tls: bool = False,
            certificate: tuple[str, str] | None = None,
            env: Mapping[str, str] | None = None,
            app: str | None = None,
        ) -> HelpdeskServer:
            name = server or "default"
            log_dir = tmp_path_factory.mktemp(f"helpdesk-stage{stage}-{name}")
            options = ServeOptions(
                stage=stage,
                server=server,
                http2=http2,
                http3=http3,
                tls=tls,
                port=0,
                workers=workers,
                uds=str(log_dir / "granian.sock") if server == "granian" else None,
            )
            # As the runner's `serve` does: the stage is set, not left to a default that a
            # stray variable in the test process could override.
            server_env = {
                "HELPDESK_DATA_DIR": str(helpdesk_data_dir),
                "HELPDESK_STAGE": str(stage),
                **(env or {}),
            }
            process = HelpdeskServer(
                options, log_dir / "server.log", env=server_env, certificate=certificate, app=app
            )
            # Registered before the wait: a server that fails to start is stopped too.
            stack.callback(process.stop)
            process.wait_until_ready()
            return process

        yield start
