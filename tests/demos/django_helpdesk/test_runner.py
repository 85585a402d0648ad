"""The demo's runner: `prepare` is idempotent, and `serve` runs the right server per stage."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import ExitStack, closing
from pathlib import Path

import pytest

from demo_projects.django_helpdesk import __main__ as runner
from demo_projects.django_helpdesk.__main__ import ServeOptions, UsageError, server_command
from demo_projects.django_helpdesk.tickets.demo_data import (
    BINARY_ATTACHMENT,
    TEXT_ATTACHMENT,
    TICKET_COUNT,
)
from tests.demos.django_helpdesk.conftest import HelpdeskServer, prepare_data_dir
from tests.servers._servers import REPO_ROOT

PY = sys.executable
PKG = "demo_projects.django_helpdesk"
CERT = ("/certs/cert.pem", "/certs/key.pem")


def counts(database: Path) -> dict[str, int]:
    """Tickets, comments and users in the demo's database."""
    found: dict[str, int] = {}
    with closing(sqlite3.connect(database)) as connection:
        for table in ("tickets_ticket", "tickets_comment", "auth_user"):
            (found[table],) = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return found


@pytest.mark.servers
def test_prepare_twice_changes_nothing(tmp_path: Path) -> None:
    """`prepare` on a fresh directory migrates and seeds; a second run keeps everything."""
    first = prepare_data_dir(tmp_path)
    assert "seeded 25 tickets" in first.stdout
    database = tmp_path / "db.sqlite3"
    seeded = counts(database)
    assert seeded["tickets_ticket"] == TICKET_COUNT
    assert seeded["tickets_comment"] > 0
    assert seeded["auth_user"] == 2
    files = {
        name: (tmp_path / "media" / name).read_bytes()
        for name in (TEXT_ATTACHMENT, BINARY_ATTACHMENT)
    }
    second = prepare_data_dir(tmp_path)
    assert "tickets already seeded" in second.stdout
    assert counts(database) == seeded
    for name, content in files.items():
        assert (tmp_path / "media" / name).read_bytes() == content


def test_the_migrations_describe_the_models(tmp_path: Path) -> None:
    """`manage makemigrations --check`: a model changed without its migration fails here, not
    in a user's `prepare`, whose `migrate` would build the old schema without a word."""
    env = dict(os.environ, HELPDESK_DATA_DIR=str(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [PY, "-m", f"{PKG}.manage", "makemigrations", "--check", "--dry-run"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            ServeOptions(stage=0),
            [
                *(PY, "-m", "gunicorn", f"{PKG}.wsgi:application"),
                *("--bind", "127.0.0.1:8000", "--worker-class", "sync", "--workers", "2"),
                *("--graceful-timeout", "5", "--access-logfile", "-", "--error-logfile", "-"),
                "--no-control-socket",
            ],
        ),
        (
            ServeOptions(stage=0, workers=4, port=9000, tls=True),
            [
                *(PY, "-m", "gunicorn", f"{PKG}.wsgi:application"),
                *("--bind", "127.0.0.1:9000", "--worker-class", "sync", "--workers", "4"),
                *("--graceful-timeout", "5", "--access-logfile", "-", "--error-logfile", "-"),
                "--no-control-socket",
                *("--certfile", CERT[0], "--keyfile", CERT[1]),
            ],
        ),
        (
            ServeOptions(stage=1),
            [
                *(PY, "-m", "uvicorn", f"{PKG}.stage1:application"),
                *("--host", "127.0.0.1", "--port", "8000"),
                *("--lifespan", "on", "--timeout-graceful-shutdown", "5"),
            ],
        ),
        (
            ServeOptions(stage=2, workers=2, tls=True),
            [
                *(PY, "-m", "uvicorn", f"{PKG}.stage2:application"),
                *("--host", "127.0.0.1", "--port", "8000"),
                *("--lifespan", "on", "--timeout-graceful-shutdown", "5"),
                *("--workers", "2"),
                *("--ssl-certfile", CERT[0], "--ssl-keyfile", CERT[1]),
            ],
        ),
        (
            ServeOptions(),
            [
                *(PY, "-m", "uvicorn", f"{PKG}.stage3:application"),
                *("--host", "127.0.0.1", "--port", "8000"),
                *("--lifespan", "on", "--timeout-graceful-shutdown", "5"),
            ],
        ),
        (
            ServeOptions(stage=1, server="hypercorn"),
            [
                *(PY, "-m", "hypercorn", f"{PKG}.stage1:application"),
                *("--bind", "127.0.0.1:8000", "--workers", "0"),
                *("--graceful-timeout", "5", "--access-logfile", "-"),
            ],
        ),
        (
            # --http2 alone picks hypercorn, which speaks h2c and h2 (ALPN) by default.
            ServeOptions(stage=1, http2=True, tls=True, workers=2),
            [
                *(PY, "-m", "hypercorn", f"{PKG}.stage1:application"),
                *("--bind", "127.0.0.1:8000", "--workers", "2"),
                *("--graceful-timeout", "5", "--access-logfile", "-"),
                *("--certfile", CERT[0], "--keyfile", CERT[1]),
            ],
        ),
        (
            ServeOptions(stage=1, server="granian", port=0),
            [
                *(PY, "-m", "granian", "--interface", "asgi"),
                *("--host", "127.0.0.1", "--port", "0", "--workers", "1", "--access-log"),
                f"{PKG}.stage1:application",
            ],
        ),
        (
            # --http3 alone picks hypercorn; QUIC listens on the same address, over UDP.
            ServeOptions(stage=3, http3=True, tls=True),
            [
                *(PY, "-m", "hypercorn", f"{PKG}.stage3:application"),
                *("--bind", "127.0.0.1:8000", "--workers", "0"),
                *("--graceful-timeout", "5", "--access-logfile", "-"),
                *("--certfile", CERT[0], "--keyfile", CERT[1]),
                *("--quic-bind", "127.0.0.1:8000"),
            ],
        ),
        (
            # Channels' own server: a Twisted endpoint string for where it listens.
            ServeOptions(stage=2, server="daphne", port=0),
            [
                *(PY, "-m", "daphne", "-e", "tcp:port=0:interface=127.0.0.1"),
                *("--access-log", "-", f"{PKG}.stage2:application"),
            ],
        ),
        (
            ServeOptions(stage=2, server="daphne", tls=True),
            [
                *(PY, "-m", "daphne", "-e"),
                f"ssl:port=8000:interface=127.0.0.1:privateKey={CERT[1]}:certKey={CERT[0]}",
                *("--access-log", "-", f"{PKG}.stage2:application"),
            ],
        ),
        (
            ServeOptions(stage=3, server="granian", uds="/run/g.sock", tls=True, workers=2),
            [
                *(PY, "-m", "granian", "--interface", "asgi", "--uds", "/run/g.sock"),
                *("--workers", "2", "--access-log"),
                *("--ssl-certificate", CERT[0], "--ssl-keyfile", CERT[1]),
                f"{PKG}.stage3:application",
            ],
        ),
    ],
)
def test_server_command(options: ServeOptions, expected: list[str]) -> None:
    assert server_command(options, certificate=CERT) == expected


def test_certificate_is_used_only_with_tls() -> None:
    command = server_command(ServeOptions(stage=1), certificate=CERT)
    assert CERT[0] not in command


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ServeOptions(stage=4), "--stage must be one of 0, 1, 2, 3"),
        (ServeOptions(stage=1, server="waitress"), "--server must be one of"),
        (ServeOptions(stage=0, server="uvicorn"), "stage 0 is the WSGI application"),
        (ServeOptions(stage=1, server="gunicorn"), "stage 0 is the WSGI application"),
        (ServeOptions(stage=1, uds="/run/x.sock"), "only wired up for granian"),
        (ServeOptions(stage=1, server="uvicorn", http2=True), "--http2 needs --server hypercorn"),
        (ServeOptions(stage=0, http2=True), "--http2 needs --server hypercorn"),
        # granian has HTTP/2; the message must not say otherwise.
        (ServeOptions(stage=1, server="granian", http2=True), "granian's HTTP/2 is not wired"),
        (ServeOptions(stage=2, server="daphne", workers=2), "daphne serves from one process"),
        (ServeOptions(stage=1, http3=True), "--http3 needs --tls"),
        (ServeOptions(stage=1, server="uvicorn", http3=True, tls=True), "--http3 needs --server"),
        (ServeOptions(stage=1, workers=0), "--workers must be at least 1"),
        (ServeOptions(stage=1, port=70000), "--port must be between 0 and 65535"),
        (ServeOptions(stage=1, port=-1), "--port must be between 0 and 65535"),
    ],
)
def test_impossible_options_are_refused(options: ServeOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        server_command(options)


def test_tls_needs_a_certificate() -> None:
    with pytest.raises(UsageError, match="--tls needs a certificate"):
        server_command(ServeOptions(stage=1, tls=True))


def test_url() -> None:
    assert ServeOptions().url() == "http://127.0.0.1:8000/"
    assert ServeOptions(tls=True, port=8443).url() == "https://127.0.0.1:8443/"


def test_parse() -> None:
    assert runner.parse(["prepare"]) == ("prepare", ServeOptions())
    assert runner.parse(["serve"]) == ("serve", ServeOptions())
    argv = ["serve", "--stage", "1", "--server", "hypercorn", "--http2", "--tls"]
    argv += ["--port", "8443", "--workers", "3"]
    expected = ServeOptions(stage=1, server="hypercorn", http2=True, tls=True, port=8443, workers=3)
    assert runner.parse(argv) == ("serve", expected)


def test_serve_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        runner.parse(["serve", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option, words in {
        "--stage": "1: the same app through WSGIToASGI",
        "--server": "default: gunicorn for stage 0, uvicorn for the others",
        "--http2": "cleartext (h2c)",
        "--http3": "HTTP/3 over QUIC",
        "--tls": "self-signed certificate",
        "--port": "default: 8000; 0 lets the system pick one",
        "--workers": "set REDIS_URL",
    }.items():
        assert option in text
        assert words in text, option
    assert "make demo PORT=8001" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--stage", "0", "--server", "uvicorn"], "stage 0 is the WSGI application"),
        (["serve", "--stage", "7"], "invalid choice"),
        ([], "required"),
    ],
)
def test_parse_refuses_bad_usage(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        runner.parse(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


class Exec(Exception):
    """Raised by the fake `os.execvp`: `serve` never returns from the real one."""


@pytest.fixture
def no_exec(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record what `serve` and `main` would prepare and exec, without doing either."""
    calls: list[object] = []

    def execvp(file: str, args: list[str]) -> None:
        calls.append(("exec", file, list(args)))
        raise Exec

    monkeypatch.setattr(runner, "prepare", lambda: calls.append("prepare"))
    monkeypatch.setattr(os, "execvp", execvp)
    # serve() sets these for the server process; monkeypatch restores them afterwards (it
    # restores only what it set itself, hence setenv rather than delenv on an absent name).
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setenv("HELPDESK_STAGE", "before")
    return calls


def test_serve_prepares_then_execs_the_server(
    no_exec: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Exec):
        runner.main(["serve", "--stage", "1", "--port", "0"])
    command = server_command(ServeOptions(stage=1, port=0))
    assert no_exec == ["prepare", ("exec", command[0], command)]
    assert capsys.readouterr().out == "Stage 1 under uvicorn: open http://127.0.0.1:0/\n"
    repo_root = str(Path(runner.__file__).resolve().parents[2])
    assert os.environ["PYTHONPATH"].split(os.pathsep) == [repo_root, "/elsewhere"]
    assert os.environ["HELPDESK_STAGE"] == "1"


def test_serve_with_tls_makes_the_certificate(
    no_exec: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    from demo_projects.django_helpdesk import certs

    made: list[Path] = []

    def ensure_certificate(data_dir: Path) -> tuple[Path, Path]:
        made.append(data_dir)
        return data_dir / "cert.pem", data_dir / "key.pem"

    monkeypatch.setattr(certs, "ensure_certificate", ensure_certificate)
    with pytest.raises(Exec):
        runner.serve(ServeOptions(stage=1, http2=True, tls=True))
    assert made == [runner.data_dir()]
    certificate = (str(made[0] / "cert.pem"), str(made[0] / "key.pem"))
    command = server_command(ServeOptions(stage=1, http2=True, tls=True), certificate=certificate)
    assert no_exec == ["prepare", ("exec", command[0], command)]


def test_main_prepare(no_exec: list[object]) -> None:
    runner.main(["prepare"])
    assert no_exec == ["prepare"]


def test_main_reads_sys_argv(no_exec: list[object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["helpdesk", "prepare"])
    runner.main()
    assert no_exec == ["prepare"]


@pytest.mark.servers
@pytest.mark.parametrize(
    ("argv", "stage", "server"),
    [
        (["--stage", "0", "--workers", "1"], 0, "gunicorn"),
        (["--stage", "1"], 1, "uvicorn"),
        # The README's main command: the last stage on the defaults.
        ([], 3, "uvicorn"),
    ],
)
def test_serve_for_real(
    argv: list[str],
    stage: int,
    server: str,
    helpdesk_data_dir: Path,
    tmp_path: Path,
) -> None:
    """`python -m demo_projects.django_helpdesk serve` prepares, prints the URL and serves."""
    command = [PY, "-m", PKG, "serve", *argv, "--port", "0"]
    with ExitStack() as stack:
        process = HelpdeskServer(
            ServeOptions(stage=stage, port=0),
            tmp_path / "serve.log",
            env={"HELPDESK_DATA_DIR": str(helpdesk_data_dir)},
            command=command,
        )
        stack.callback(process.stop)
        process.wait_until_ready()
        assert f"Stage {stage} under {server}: open http://127.0.0.1:0/" in process.log()
        with process.client() as client:
            landing = client.get("/")
        assert landing.status_code == 200
        assert f'data-stage="{stage}"' in landing.text
