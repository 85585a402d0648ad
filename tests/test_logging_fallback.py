"""The ``crossgate`` logger's fallback handler: prints only what nothing else would print."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import crossgate  # noqa: F401  (importing crossgate installs the fallback)
from crossgate._logging import FallbackHandler, install_fallback

STAMPED = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[ERROR\] ")


@contextmanager
def own_logger() -> Iterator[logging.Logger]:
    """A non-propagating logger tree with a fallback handler, made inside the test body.

    pytest's capture handler sits on the root logger and on every logger that is already
    non-propagating when a test phase starts; this one is out of its reach, as crossgate's
    records are under a server that configures no root handler.
    """
    tree = logging.getLogger("fallback_test")
    tree.propagate = False
    tree.addHandler(FallbackHandler())
    try:
        yield tree
    finally:
        for name in ("fallback_test", "fallback_test.child"):
            for added in list(logging.getLogger(name).handlers):
                logging.getLogger(name).removeHandler(added)
        tree.propagate = True


def test_importing_crossgate_installs_one_fallback() -> None:
    handlers = logging.getLogger("crossgate").handlers

    assert sum(isinstance(handler, FallbackHandler) for handler in handlers) == 1
    assert install_fallback() in handlers
    assert sum(isinstance(handler, FallbackHandler) for handler in handlers) == 1


def test_alone_it_prints_level_time_and_name(capsys: pytest.CaptureFixture[str]) -> None:
    with own_logger():
        logging.getLogger("fallback_test.child").error("disk %s", "full")

    err = capsys.readouterr().err
    assert STAMPED.match(err), err
    assert err.endswith("fallback_test.child: disk full\n")


def test_silent_when_another_handler_on_the_way_up(capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    with own_logger():
        logging.getLogger("fallback_test.child").addHandler(logging.StreamHandler(stream))
        logging.getLogger("fallback_test.child").error("once")

    assert stream.getvalue() == "once\n"
    assert capsys.readouterr().err == ""


def test_silent_under_a_root_handler(capsys: pytest.CaptureFixture[str]) -> None:
    # pytest's own capture handler on the root logger is such a handler.
    logging.getLogger("crossgate.test").error("to the root's handlers only")

    assert capsys.readouterr().err == ""


def test_a_handler_above_the_records_level_does_not_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    critical_only = logging.StreamHandler(io.StringIO())
    critical_only.setLevel(logging.CRITICAL)
    with own_logger() as logger:
        logger.addHandler(critical_only)
        logger.error("nobody else takes this one")

    assert "nobody else takes this one" in capsys.readouterr().err


def test_without_stderr_it_drops_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", None)

    with own_logger() as logger:
        logger.error("nowhere to go")  # no exception: like lastResort, nowhere to write


def test_a_failing_stream_goes_to_handle_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("stream gone")

    failures: list[str] = []
    monkeypatch.setattr("sys.stderr", Broken())
    monkeypatch.setattr(
        FallbackHandler, "handleError", lambda self, record: failures.append(record.getMessage())
    )

    with own_logger() as logger:
        logger.error("lost")

    assert failures == ["lost"]
