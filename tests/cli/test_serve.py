"""``crossgate serve`` started for real: each of the six servers, a WSGI app and an ASGI app.

Every case runs the command in a child process (``_serve.py``) and talks to it over
127.0.0.1: the app answers as itself, a request body reaches it, an app error is a 500, and
where crossgate wraps the app its error log line carries a level and a timestamp.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli._serve import REPO_ROOT, Serve, crossgate_command, environment

pytestmark = pytest.mark.servers

SERVERS = ("uvicorn", "hypercorn", "granian", "daphne", "gunicorn", "waitress")
APPS = {"wsgi": "tests.cli.apps:wsgi_app", "asgi": "tests.cli.apps:asgi_app"}

# What each server speaks; an app of the other kind is wrapped (granian speaks both).
SPEAKS = {
    "uvicorn": ("asgi",),
    "hypercorn": ("asgi",),
    "granian": ("asgi", "wsgi"),
    "daphne": ("asgi",),
    "gunicorn": ("wsgi",),
    "waitress": ("wsgi",),
}
ADAPTER = {"wsgi": "WSGIToASGI", "asgi": "ASGIToWSGI"}

# "[2026-12-07 17:36:44 +0000] [19764] [ERROR] crossgate: ..." (crossgate/_logging.py)
# The adapter raises the app's exception to the server (raise_app_exceptions), which logs the
# traceback; crossgate's own line about it is at INFO, shown at serve's default --log-level.
STAMPED_LINE = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[INFO\] crossgate[.:]"
    r".*broke on purpose",
    re.M,
)

CASES = [(server, kind) for server in SERVERS for kind in APPS]


@pytest.fixture(scope="module", params=CASES, ids=[f"{s}-{k}" for s, k in CASES])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Serve, str, str]]:
    server, kind = request.param
    log_path = tmp_path_factory.mktemp(f"serve-{server}-{kind}") / "serve.log"
    serve = Serve(log_path, APPS[kind], "--server", server)
    try:
        serve.wait_until_ready()
        yield serve, server, kind
    finally:
        serve.stop()


def test_the_app_answers(served: tuple[Serve, str, str]) -> None:
    serve, _, kind = served

    response = httpx.get(serve.base_url + "/", timeout=10.0)

    assert response.status_code == 200, serve.describe()
    assert response.text == f"{kind} app"


def test_a_request_body_reaches_the_app(served: tuple[Serve, str, str]) -> None:
    serve, _, _ = served
    body = bytes(range(256)) * 400

    response = httpx.post(serve.base_url + "/echo", content=body, timeout=10.0)

    assert response.status_code == 200, serve.describe()
    assert response.content == body


def test_the_startup_line_says_what_is_served_and_how(served: tuple[Serve, str, str]) -> None:
    serve, server, kind = served
    how = "as it is" if kind in SPEAKS[server] else f"wrapped in {ADAPTER[kind]}"

    line = f"crossgate.cli: serving {APPS[kind]} ({kind.upper()}, {how}) on {server}"

    assert line in serve.log(), serve.describe()


def test_an_app_error_is_a_500_and_a_stamped_log_line(served: tuple[Serve, str, str]) -> None:
    serve, server, kind = served

    response = httpx.get(serve.base_url + "/broken", timeout=10.0)

    assert response.status_code == 500, serve.describe()
    assert serve.wait_for_log("broke on purpose"), serve.describe()
    if kind not in SPEAKS[server]:
        # crossgate's adapter logged it: level and time, as the server's own lines have.
        assert STAMPED_LINE.search(serve.log()), serve.describe()


def test_python_dash_m_and_workers(tmp_path: Path) -> None:
    # python -m crossgate is what Serve runs; two gunicorn workers each build the wrapped app.
    serve = Serve(tmp_path / "serve.log", APPS["asgi"], "--server", "gunicorn", "--workers", "2")
    try:
        serve.wait_until_ready()
        assert serve.wait_for_log("Booting worker", timeout=10.0)
        responses = [httpx.get(serve.base_url + "/", timeout=10.0) for _ in range(4)]
        assert [r.text for r in responses] == ["asgi app"] * 4
        log = serve.log()
        assert log.count("Booting worker") == 2, serve.describe()
    finally:
        serve.stop()


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn", "gunicorn"])
def test_reload_serves_the_changed_code(tmp_path: Path, server: str) -> None:
    module = tmp_path / "reloaded.py"
    module.write_text(
        "from wsgiref.validate import validator\n"
        "@validator\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'first']\n"
    )
    serve = Serve(
        tmp_path / "serve.log", "reloaded:app", "--reload", "--server", server, cwd=tmp_path
    )
    try:
        serve.wait_until_ready()
        assert httpx.get(serve.base_url + "/", timeout=10.0).text == "first"
        # Some reloaders compare modification times: make the change visible to them.
        time.sleep(1.1)
        module.write_text(module.read_text().replace("first", "second"))
        # The old process answers until the new one takes over: poll, bounded.
        deadline = time.monotonic() + 30.0
        text = ""
        while text != "second" and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                text = httpx.get(serve.base_url + "/", timeout=10.0).text
            time.sleep(0.2)
        assert text == "second", serve.describe()
    finally:
        serve.stop()


def test_hypercorn_workers(tmp_path: Path) -> None:
    serve = Serve(tmp_path / "serve.log", APPS["wsgi"], "--server", "hypercorn", "--workers", "2")
    try:
        serve.wait_until_ready()
        answers = {httpx.get(serve.base_url + "/", timeout=10.0).text for _ in range(4)}
        assert answers == {"wsgi app"}, serve.describe()
    finally:
        serve.stop()


# -- mistakes: one line that says what to do, exit status 2, no traceback -----------------------


def _run(*arguments: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """``crossgate ARGUMENTS`` to completion (``prelude`` runs first, in the same process)."""
    if prelude:
        code = f"{prelude}\nimport sys\nfrom crossgate.cli import main\nsys.exit(main())"
        command = [sys.executable, "-c", code, *arguments]
    else:
        command = crossgate_command(*arguments)
    return subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


MISTAKES = [
    (("serve", "no_such_module:app"), "could not import module 'no_such_module'"),
    (("serve", "tests.cli.apps:nothing"), "module 'tests.cli.apps' has no attribute 'nothing'"),
    (("serve", "tests.cli.apps"), "'tests.cli.apps' is not MODULE:ATTR"),
    (("serve", "tests.cli.apps:not_an_app"), "is a str, not a WSGI or ASGI application"),
    (("serve", APPS["wsgi"], "--server", "daphne", "--workers", "2"), "--workers: daphne runs"),
    (("serve", APPS["wsgi"], "--server", "waitress", "--reload"), "--reload: waitress has no"),
    (
        ("serve", APPS["asgi"], "--threads", "4"),
        "--threads is a WSGIToASGI option, but uvicorn serves tests.cli.apps:asgi_app as it is",
    ),
    (
        ("serve", APPS["wsgi"], "--mode", "inline"),
        "--mode is a ASGIToWSGI option, but uvicorn serves tests.cli.apps:wsgi_app through "
        "WSGIToASGI",
    ),
]


@pytest.mark.parametrize(("arguments", "message"), MISTAKES)
def test_a_mistake_prints_one_line(arguments: tuple[str, ...], message: str) -> None:
    result = _run(*arguments)

    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("crossgate: error: "), result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_server_package_says_what_to_install() -> None:
    # sys.modules[name] = None is how Python says "this module cannot be imported".
    result = _run(
        "serve",
        APPS["wsgi"],
        "--server",
        "waitress",
        prelude="import sys; sys.modules['waitress'] = None",
    )

    assert result.returncode == 2, result
    assert result.stderr == (
        "crossgate: error: --server waitress needs the waitress package: pip install waitress\n"
    )


def test_an_error_inside_the_app_module_is_one_line_too(tmp_path: Path) -> None:
    (tmp_path / "broken_module.py").write_text("import no_such_dependency\n")

    result = _run("serve", "broken_module:app", "--app-dir", str(tmp_path))

    assert result.returncode == 2, result
    assert result.stderr == (
        "crossgate: error: importing 'broken_module' failed: ModuleNotFoundError: "
        "No module named 'no_such_dependency'\n"
    )


def test_help_reads_like_a_servers_help() -> None:
    top = _run("--help")
    serve = _run("serve", "--help")

    assert top.returncode == serve.returncode == 0
    assert "serve" in top.stdout
    assert serve.stdout.startswith("usage: crossgate serve [OPTIONS] APP")
    for option in ("--server", "--host", "--port", "--workers", "--reload", "--interface"):
        assert option in serve.stdout
    for option in ("--threads", "--max-body-size", "--mode", "--lifespan", "--request-body"):
        assert option in serve.stdout
    for server in SERVERS:
        assert server in serve.stdout


def test_interface_overrides_detection(tmp_path: Path) -> None:
    # An ASGI app that is a plain function returning a coroutine looks like WSGI to the
    # detection rule; --interface asgi says what it is.
    (tmp_path / "plain.py").write_text(
        "def app(scope, receive, send):\n"
        "    return _app(scope, receive, send)\n"
        "async def _app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'plain asgi'})\n"
    )
    serve = Serve(tmp_path / "serve.log", "plain:app", "--interface", "asgi", cwd=tmp_path)
    try:
        serve.wait_until_ready()
        assert httpx.get(serve.base_url + "/", timeout=10.0).text == "plain asgi"
        assert "(ASGI, as it is) on uvicorn" in serve.log()
    finally:
        serve.stop()
