"""``crossgate`` argument checks and mistakes, in this process (nothing is served here)."""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossgate import WSGIToASGI
from crossgate.cli import main
from crossgate.cli._servers import ENVIRONMENT_KEY, CommandLineError, ServeCommand

APP = "tests.cli.apps:wsgi_app"


@pytest.fixture(autouse=True)
def _restore_logging_and_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`crossgate serve` configures the crossgate logger and sys.path for its own process."""
    logger = logging.getLogger("crossgate")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    logger.handlers[:], logger.propagate = saved[0], saved[2]
    logger.setLevel(saved[1])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--port", "http"], "not a port number: 'http'"),
        (["--port", "70000"], "not a port number: '70000'"),
        (["--workers", "two"], "not a whole number: 'two'"),
        (["--workers", "0"], "must be at least 1: '0'"),
        (["--max-body-size", "1MB"], "not a size in bytes: '1MB'"),
        (["--max-body-size", "-1"], "must not be negative: '-1'"),
        (["--queue-timeout", "soon"], "not a number of seconds: 'soon'"),
        (["--queue-timeout", "0"], "must be positive: '0'"),
        (["--server", "apache"], "invalid choice: 'apache'"),
    ],
)
def test_bad_option_values_are_usage_errors(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", APP, *arguments])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: crossgate serve [OPTIONS] APP")
    assert message in err


def test_a_failing_import_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "raising_module.py").write_text("raise RuntimeError('no settings')\n")

    status = main(["serve", "raising_module:app", "--app-dir", str(tmp_path)])

    assert status == 2
    assert capsys.readouterr().err == (
        "crossgate: error: importing 'raising_module' failed: RuntimeError: no settings\n"
    )


def test_a_missing_import_whose_name_starts_the_modules_is_not_the_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "settings_app.py").write_text("import settings\n")

    status = main(["serve", "settings_app:app", "--app-dir", str(tmp_path)])

    assert status == 2
    assert capsys.readouterr().err == (
        "crossgate: error: importing 'settings_app' failed: ModuleNotFoundError: "
        "No module named 'settings'\n"
    )


def test_granian_reload_needs_watchfiles(capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("watchfiles") is not None:
        pytest.skip("watchfiles is installed here: granian --reload would start")

    status = main(["serve", APP, "--server", "granian", "--reload"])

    assert status == 2
    assert capsys.readouterr().err == (
        "crossgate: error: --reload on granian needs watchfiles: pip install 'granian[reload]'\n"
    )


def test_the_app_module_outside_crossgate_serve_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENVIRONMENT_KEY, raising=False)

    with pytest.raises(CommandLineError, match="run `crossgate serve MODULE:ATTR`"):
        ServeCommand.from_environment()


def test_adapter_options_reach_the_adapter() -> None:
    served = ServeCommand(
        app=APP,
        server="uvicorn",
        host="127.0.0.1",
        port=8000,
        workers=None,
        reload=False,
        log_level="warning",
        interface="auto",
        app_dir=".",
        options={"threads": 3, "max_body_size": 10},
    )

    built = served.build()

    assert isinstance(built, WSGIToASGI)
    assert (built.workers, built.max_body_size) == (3, 10)
