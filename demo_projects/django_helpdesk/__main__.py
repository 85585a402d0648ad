"""The demo's runner: `python -m demo_projects.django_helpdesk prepare|serve`.

`prepare` creates the data directory, applies the migrations and seeds the demo data (safe to
run again). `serve` prepares, prints the URL and replaces itself with the server process of the
chosen stage, on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SETTINGS = "demo_projects.django_helpdesk.settings"
PACKAGE = "demo_projects.django_helpdesk"
STAGES = (0, 1, 2, 3)
SERVERS = ("gunicorn", "uvicorn", "hypercorn", "granian", "daphne")
# The server each stage runs under unless `--server` says otherwise.
DEFAULT_SERVER = {0: "gunicorn", 1: "uvicorn", 2: "uvicorn", 3: "uvicorn"}


def data_dir() -> Path:
    """The data directory the settings use (`HELPDESK_DATA_DIR`, or `var/` beside this file)."""
    from demo_projects.django_helpdesk import settings

    return settings.DATA_DIR


def prepare() -> None:
    """Create the data directory, migrate the database and seed the demo data (idempotent)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    import django
    from django.core.management import call_command

    django.setup()
    data_dir().mkdir(parents=True, exist_ok=True)
    call_command("migrate", interactive=False, verbosity=0)
    call_command("seed_demo")


@dataclass(frozen=True)
class ServeOptions:
    """What `serve` runs: the stage, the server and how it listens.

    `server=None` picks the stage's default (gunicorn for stage 0, uvicorn after, hypercorn for
    HTTP/2); `workers=None` the demo's default (2 for gunicorn, one process for the others).
    """

    stage: int = 3
    server: str | None = None
    http2: bool = False
    # HTTP/3 over QUIC (UDP, on the same port number as TCP), beside HTTP/1.1 and HTTP/2 over
    # TCP: hypercorn with aioquic, TLS required.
    http3: bool = False
    tls: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int | None = None
    # A unix socket to listen on instead of host:port (granian only). The tests use it because
    # granian prints the port it was asked for, so with port 0 nobody would learn the real one.
    uds: str | None = None

    @property
    def server_name(self) -> str:
        """The server that will run: the one asked for, or the stage's default (hypercorn when
        HTTP/2 is asked for an ASGI stage: the only one here that speaks it)."""
        if self.server is not None:
            return self.server
        if (self.http2 or self.http3) and self.stage != 0:
            return "hypercorn"
        return DEFAULT_SERVER.get(self.stage, "uvicorn")

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self) -> str:
        """Where the landing page answers."""
        return f"{self.scheme}://{self.host}:{self.port}/"


class UsageError(Exception):
    """The options ask for something the demo cannot run; the message says what instead."""


def check(options: ServeOptions) -> None:
    """Reject combinations that cannot work.

    Raises:
        UsageError: with what to use instead.
    """
    server = options.server_name
    if options.stage not in STAGES:
        raise UsageError(f"--stage must be one of {', '.join(map(str, STAGES))}")
    if server not in SERVERS:
        raise UsageError(f"--server must be one of {', '.join(SERVERS)}")
    if (options.stage == 0) != (server == "gunicorn"):
        raise UsageError(
            "stage 0 is the WSGI application and runs under gunicorn; stages 1-3 are ASGI and "
            "run under uvicorn, hypercorn, granian or daphne"
        )
    if options.uds is not None and server != "granian":
        raise UsageError("a unix socket (uds) is only wired up for granian")
    if options.http2 and server != "hypercorn":
        raise UsageError(
            "--http2 needs --server hypercorn: of the servers here, it is the one the runner "
            "sets up for HTTP/2 (uvicorn and daphne speak HTTP/1.1 only, gunicorn's sync "
            "workers too, and granian's HTTP/2 is not wired up here)"
        )
    if options.http3 and server != "hypercorn":
        raise UsageError("--http3 needs --server hypercorn (with aioquic, the one that speaks it)")
    if options.http3 and not options.tls:
        raise UsageError("--http3 needs --tls: QUIC always encrypts, with the TLS certificate")
    if options.workers is not None and server == "daphne":
        raise UsageError("daphne serves from one process: leave --workers out")
    if options.workers is not None and options.workers < 1:
        raise UsageError("--workers must be at least 1")
    if not 0 <= options.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")


def entry_point(stage: int) -> str:
    """The `module:attribute` of a stage's application."""
    return f"{PACKAGE}.{'wsgi' if stage == 0 else f'stage{stage}'}:application"


def server_command(
    options: ServeOptions,
    *,
    certificate: tuple[str, str] | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The command line that serves `options.stage` with `options.server_name`.

    `certificate` is `(certfile, keyfile)` and is required with `options.tls`. Port 0 makes the
    kernel pick a free port, which every server here but granian prints once bound.

    Raises:
        UsageError: the options cannot work together (see `check`), or TLS without a
            certificate.
    """
    check(options)
    if options.tls and certificate is None:
        raise UsageError("--tls needs a certificate")
    tls = certificate if options.tls else None
    server = options.server_name
    app = entry_point(options.stage)
    bind = f"{options.host}:{options.port}"
    command = [python, "-m", server]
    if server == "gunicorn":
        command += [
            app,
            *("--bind", bind, "--worker-class", "sync"),
            *("--workers", str(options.workers or 2)),
            *("--graceful-timeout", "5", "--access-logfile", "-", "--error-logfile", "-"),
            # gunicorn 24+ opens a control socket under ~/.gunicorn, one path for every
            # instance; the demo needs none.
            "--no-control-socket",
        ]
        if tls is not None:
            command += ["--certfile", tls[0], "--keyfile", tls[1]]
    elif server == "uvicorn":
        command += [
            app,
            *("--host", options.host, "--port", str(options.port)),
            # "on": a failing lifespan startup stops the server instead of being ignored.
            *("--lifespan", "on", "--timeout-graceful-shutdown", "5"),
        ]
        if options.workers is not None:
            command += ["--workers", str(options.workers)]
        if tls is not None:
            command += ["--ssl-certfile", tls[0], "--ssl-keyfile", tls[1]]
    elif server == "hypercorn":
        # Hypercorn speaks HTTP/2 by default: cleartext h2c with prior knowledge or upgrade, and
        # h2 through ALPN over TLS. `--workers 0` serves from this one process.
        command += [
            app,
            *("--bind", bind, "--workers", str(options.workers or 0)),
            *("--graceful-timeout", "5", "--access-logfile", "-"),
        ]
        if tls is not None:
            command += ["--certfile", tls[0], "--keyfile", tls[1]]
        if options.http3:
            # The same address for UDP: hypercorn answers HTTP/3 there (and advertises it in
            # the Alt-Svc header of its TCP responses).
            command += ["--quic-bind", bind]
    elif server == "daphne":
        # Channels' own server. `-e` takes a Twisted endpoint: TCP, or TLS with the files.
        endpoint = f"tcp:port={options.port}:interface={options.host}"
        if tls is not None:
            endpoint = (
                f"ssl:port={options.port}:interface={options.host}"
                f":privateKey={tls[1]}:certKey={tls[0]}"
            )
        command += ["-e", endpoint, "--access-log", "-", app]
    else:
        command += ["--interface", "asgi"]
        if options.uds is not None:
            command += ["--uds", options.uds]
        else:
            command += ["--host", options.host, "--port", str(options.port)]
        command += ["--workers", str(options.workers or 1), "--access-log"]
        if tls is not None:
            command += ["--ssl-certificate", tls[0], "--ssl-keyfile", tls[1]]
        command.append(app)
    return command


SERVE_EXAMPLES = """examples:
  serve                                     stage 3 under uvicorn on port 8000
  serve --port 8001                         the same on port 8001 (make demo PORT=8001)
  serve --stage 1 --server hypercorn --http2 --tls
                                            stage 1 over HTTP/2 with TLS
  serve --stage 3 --http3 --tls             stage 3 over HTTP/3 too (hypercorn, QUIC on UDP)
  serve --stage 2 --server daphne           stage 2 under Channels' own server
  REDIS_URL=redis://127.0.0.1:6379/0 serve --stage 2 --workers 2
                                            two uvicorn workers sharing live comments
"""


def parse(argv: Sequence[str]) -> tuple[str, ServeOptions]:
    """The sub-command and the serve options from the command line (exits on bad usage)."""
    parser = argparse.ArgumentParser(
        prog="python -m demo_projects.django_helpdesk",
        description="Run the helpdesk demo at any stage of its migration to ASGI.",
        epilog="Users: demo/demo, and admin/admin for the admin. The data lives in "
        "demo_projects/django_helpdesk/var/ unless HELPDESK_DATA_DIR says otherwise; set "
        "REDIS_URL for the Channels layer across worker processes (stages 2 and 3).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "prepare",
        help="migrate the database and load the demo data (safe to run again)",
        description="Migrate the database and load the demo data (safe to run again).",
    )
    serve = commands.add_parser(
        "serve",
        help="prepare, then run a stage under a server on 127.0.0.1",
        description="Prepare the database, print the URL, then run a stage under a server on "
        "127.0.0.1 (the server's own process replaces this one; Ctrl+C stops it).",
        epilog=SERVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--stage",
        type=int,
        choices=STAGES,
        default=3,
        help="0: the WSGI app under gunicorn; 1: the same app through WSGIToASGI; 2: plus "
        "Channels websockets (live comments); 3: plus new async views first, the legacy app "
        "behind them (default: %(default)s)",
    )
    serve.add_argument(
        "--server",
        choices=SERVERS,
        default=None,
        help="the server to run (default: gunicorn for stage 0, uvicorn for the others, "
        "hypercorn with --http2)",
    )
    serve.add_argument(
        "--http2",
        action="store_true",
        help="HTTP/2, cleartext (h2c) or with --tls (hypercorn, which speaks it by default)",
    )
    serve.add_argument(
        "--http3",
        action="store_true",
        help="HTTP/3 over QUIC on the same port (UDP) as well, with --tls (hypercorn with aioquic)",
    )
    serve.add_argument(
        "--tls",
        action="store_true",
        help="HTTPS with a self-signed certificate for localhost, made on first use in the "
        "data directory",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=8000,
        help="the TCP port on 127.0.0.1 (default: %(default)s; 0 lets the system pick one)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: 2 for gunicorn, one process for the others; with "
        "more than one, set REDIS_URL so that live comments reach every worker)",
    )
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return "prepare", ServeOptions()
    options = ServeOptions(
        stage=args.stage,
        server=args.server,
        http2=args.http2,
        http3=args.http3,
        tls=args.tls,
        port=args.port,
        workers=args.workers,
    )
    try:
        check(options)
    except UsageError as exc:
        parser.error(str(exc))
    return "serve", options


def serve(options: ServeOptions) -> None:
    """Prepare, print the URL, and replace this process with the server (never returns)."""
    prepare()
    certificate = None
    if options.tls:
        from demo_projects.django_helpdesk.certs import ensure_certificate

        certfile, keyfile = ensure_certificate(data_dir())
        certificate = (str(certfile), str(keyfile))
    command = server_command(options, certificate=certificate)
    # The server process imports the demo by module name, from wherever it was started.
    repo_root = str(Path(__file__).resolve().parents[2])
    pythonpath = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [repo_root, pythonpath]))
    # Each entry point only sets a default; the runner knows which stage it starts.
    os.environ["HELPDESK_STAGE"] = str(options.stage)
    print(f"Stage {options.stage} under {options.server_name}: open {options.url()}", flush=True)
    os.execvp(command[0], command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m demo_projects.django_helpdesk`."""
    command, options = parse(sys.argv[1:] if argv is None else argv)
    if command == "prepare":
        prepare()
    else:
        serve(options)


if __name__ == "__main__":
    main()
