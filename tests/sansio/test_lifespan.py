"""The lifespan startup rule (uvicorn's ``--lifespan auto``), as a table."""

from __future__ import annotations

from typing import Any

import pytest

from crossgate.exceptions import AppProtocolError
from crossgate.sansio.lifespan import StartupOutcome, StartupVerdict, check_answer, judge_startup

COMPLETE = StartupOutcome.COMPLETE
FAILED = StartupOutcome.FAILED
UNSUPPORTED = StartupOutcome.UNSUPPORTED


@pytest.mark.parametrize(
    ("answer", "error", "required", "expected"),
    [
        ({"type": "lifespan.startup.complete"}, None, False, StartupVerdict(COMPLETE)),
        ({"type": "lifespan.startup.complete"}, None, True, StartupVerdict(COMPLETE)),
        (
            {"type": "lifespan.startup.failed", "message": "no db"},
            None,
            False,
            StartupVerdict(FAILED, "no db"),
        ),
        ({"type": "lifespan.startup.failed"}, None, False, StartupVerdict(FAILED, "")),
        # Anything else is how an app without lifespan answers: a Starlette Response sends
        # http.response.start for any scope.
        (
            {"type": "http.response.start", "status": 200},
            None,
            False,
            StartupVerdict(UNSUPPORTED, "sent 'http.response.start' in answer to lifespan.startup"),
        ),
        (
            {"type": "lifespan.shutdown.complete"},
            None,
            False,
            StartupVerdict(
                UNSUPPORTED, "sent 'lifespan.shutdown.complete' in answer to lifespan.startup"
            ),
        ),
        (
            None,
            ValueError("no"),
            False,
            StartupVerdict(
                UNSUPPORTED, "raised ValueError('no') without answering lifespan.startup"
            ),
        ),
        (
            None,
            None,
            False,
            StartupVerdict(UNSUPPORTED, "returned without answering lifespan.startup"),
        ),
        # lifespan="on": the same cases fail startup.
        (
            {"type": "http.response.start"},
            None,
            True,
            StartupVerdict(
                FAILED,
                "the app does not support the lifespan protocol (it sent "
                "'http.response.start' in answer to lifespan.startup)",
            ),
        ),
        (
            None,
            ValueError("no"),
            True,
            StartupVerdict(
                FAILED,
                "the app does not support the lifespan protocol (it raised ValueError('no') "
                "without answering lifespan.startup)",
            ),
        ),
    ],
)
def test_judge_startup(
    answer: dict[str, Any] | None,
    error: BaseException | None,
    required: bool,
    expected: StartupVerdict,
) -> None:
    assert judge_startup(answer, error=error, required=required) == expected


@pytest.mark.parametrize(
    ("waiting", "kind"),
    [
        ("lifespan.startup", "lifespan.startup.complete"),
        ("lifespan.startup", "lifespan.startup.failed"),
        ("lifespan.shutdown", "lifespan.shutdown.complete"),
        ("lifespan.shutdown", "lifespan.shutdown.failed"),
    ],
)
def test_check_answer_accepts_the_answers(waiting: str, kind: str) -> None:
    check_answer(waiting, {"type": kind})


@pytest.mark.parametrize(
    ("waiting", "kind", "said"),
    [
        ("lifespan.startup", "http.response.start", "in answer to 'lifespan.startup'"),
        ("lifespan.startup", "lifespan.shutdown.complete", "in answer to 'lifespan.startup'"),
        ("lifespan.shutdown", "lifespan.startup.complete", "in answer to 'lifespan.shutdown'"),
        (None, "lifespan.startup.complete", "no lifespan event was waiting"),
    ],
)
def test_check_answer_refuses_the_rest(waiting: str | None, kind: str, said: str) -> None:
    with pytest.raises(AppProtocolError, match=said):
        check_answer(waiting, {"type": kind})
