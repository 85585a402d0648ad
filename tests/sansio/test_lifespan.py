"""The lifespan startup rule (uvicorn's ``--lifespan auto``), as a table."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from crossgate.exceptions import AppProtocolError, CrossgateError
from crossgate.sansio.lifespan import LifespanCycle, LifespanPhase

COMPLETE = LifespanPhase.SERVING
FAILED = LifespanPhase.FAILED
UNSUPPORTED = LifespanPhase.UNSUPPORTED


@pytest.mark.parametrize(
    ("answer", "error", "required", "expected"),
    [
        ({"type": "lifespan.startup.complete"}, None, False, (COMPLETE, "")),
        ({"type": "lifespan.startup.complete"}, None, True, (COMPLETE, "")),
        (
            {"type": "lifespan.startup.failed", "message": "no db"},
            None,
            False,
            (FAILED, "no db"),
        ),
        ({"type": "lifespan.startup.failed"}, None, False, (FAILED, "")),
        # Anything else is how an app without lifespan answers: a Starlette Response sends
        # http.response.start for any scope.
        (
            {"type": "http.response.start", "status": 200},
            None,
            False,
            (UNSUPPORTED, "sent 'http.response.start' in answer to lifespan.startup"),
        ),
        (
            {"type": "lifespan.shutdown.complete"},
            None,
            False,
            (UNSUPPORTED, "sent 'lifespan.shutdown.complete' in answer to lifespan.startup"),
        ),
        (
            None,
            ValueError("no"),
            False,
            (UNSUPPORTED, "raised ValueError('no') without answering lifespan.startup"),
        ),
        (
            None,
            None,
            False,
            (UNSUPPORTED, "returned without answering lifespan.startup"),
        ),
        # lifespan="on": the same cases fail startup.
        (
            {"type": "http.response.start"},
            None,
            True,
            (
                FAILED,
                "the app does not support the lifespan protocol (it sent "
                "'http.response.start' in answer to lifespan.startup)",
            ),
        ),
        (
            None,
            ValueError("no"),
            True,
            (
                FAILED,
                "the app does not support the lifespan protocol (it raised ValueError('no') "
                "without answering lifespan.startup)",
            ),
        ),
    ],
)
def test_the_startup_answer_decides_the_phase(
    answer: dict[str, Any] | None,
    error: BaseException | None,
    required: bool,
    expected: tuple[LifespanPhase, str],
) -> None:
    cycle = LifespanCycle(required=required)
    cycle.send("lifespan.startup")
    if answer is None:
        cycle.ended(error)
    else:
        with contextlib.suppress(AppProtocolError):  # a wrong answer is judged, then refused
            cycle.app_sent(answer)
    assert (cycle.phase, cycle.reason) == expected


@pytest.mark.parametrize(
    ("waiting", "kind"),
    [
        ("lifespan.startup", "lifespan.startup.complete"),
        ("lifespan.startup", "lifespan.startup.failed"),
        ("lifespan.shutdown", "lifespan.shutdown.complete"),
        ("lifespan.shutdown", "lifespan.shutdown.failed"),
    ],
)
def test_the_answers_are_accepted(waiting: str, kind: str) -> None:
    _waiting_for(waiting).app_sent({"type": kind})


@pytest.mark.parametrize(
    ("waiting", "kind", "said"),
    [
        ("lifespan.startup", "http.response.start", "in answer to 'lifespan.startup'"),
        ("lifespan.startup", "lifespan.shutdown.complete", "in answer to 'lifespan.startup'"),
        ("lifespan.shutdown", "lifespan.startup.complete", "in answer to 'lifespan.shutdown'"),
        (None, "lifespan.startup.complete", "no lifespan event was waiting"),
    ],
)
def test_the_rest_is_refused(waiting: str | None, kind: str, said: str) -> None:
    with pytest.raises(AppProtocolError, match=said):
        _waiting_for(waiting).app_sent({"type": kind})


def _waiting_for(event: str | None) -> LifespanCycle:
    if event == "lifespan.startup":
        return _cycle(event)
    if event == "lifespan.shutdown":
        return _cycle("lifespan.startup", START, event)
    return _cycle("lifespan.startup", START)


# --- LifespanCycle: the phases, as a table ---------------------------------------------------

P = LifespanPhase
START: Any = {"type": "lifespan.startup.complete"}
STOP: Any = {"type": "lifespan.shutdown.complete"}


def _cycle(*steps: Any, required: bool = False) -> LifespanCycle:
    cycle = LifespanCycle(required=required)
    for step in steps:
        if isinstance(step, str):
            cycle.send(step)
        elif isinstance(step, BaseException | type(None)):
            cycle.ended(step)
        elif isinstance(step, float):
            cycle.timed_out(step)
        else:
            cycle.app_sent(step)
    return cycle


@pytest.mark.parametrize(
    ("steps", "required", "phase", "reason"),
    [
        (["lifespan.startup"], False, P.STARTING, ""),
        (["lifespan.startup", START], False, P.SERVING, ""),
        (
            ["lifespan.startup", {"type": "lifespan.startup.failed", "message": "no db"}],
            False,
            P.FAILED,
            "no db",
        ),
        (["lifespan.startup", None], False, P.UNSUPPORTED, "returned without answering"),
        (["lifespan.startup", None], True, P.FAILED, "does not support the lifespan protocol"),
        (["lifespan.startup", 0.5], False, P.FAILED, "did not complete lifespan.startup within"),
        (["lifespan.startup", START, None], False, P.STOPPED, ""),
        (["lifespan.startup", START, "lifespan.shutdown"], False, P.STOPPING, ""),
        (["lifespan.startup", START, "lifespan.shutdown", STOP], False, P.STOPPED, ""),
        (["lifespan.startup", START, "lifespan.shutdown", None], False, P.STOPPED, ""),
        (
            ["lifespan.startup", START, "lifespan.shutdown", ValueError("x")],
            False,
            P.STOPPED,
            "raised during shutdown: ValueError('x')",
        ),
        (
            ["lifespan.startup", START, "lifespan.shutdown", {"type": "lifespan.shutdown.failed"}],
            False,
            P.STOPPED,
            "failed to shut down",
        ),
        (
            ["lifespan.startup", START, "lifespan.shutdown", 2.0],
            False,
            P.STOPPED,
            "did not complete lifespan.shutdown within 2 s",
        ),
    ],
)
def test_cycle_phases(steps: list[Any], required: bool, phase: LifespanPhase, reason: str) -> None:
    cycle = _cycle(*steps, required=required)
    assert cycle.phase is phase
    assert reason in cycle.reason
    assert bool(reason) == bool(cycle.reason)


def test_a_wrong_answer_is_judged_then_refused() -> None:
    cycle = _cycle("lifespan.startup")
    with pytest.raises(AppProtocolError, match=r"in answer to 'lifespan\.startup'"):
        cycle.app_sent({"type": "http.response.start"})
    assert cycle.phase is P.UNSUPPORTED
    cycle = _cycle("lifespan.startup", START, "lifespan.shutdown")
    with pytest.raises(AppProtocolError, match=r"in answer to 'lifespan\.shutdown'"):
        cycle.app_sent(START)
    assert (cycle.phase, cycle.reason) == (
        P.STOPPED,
        "answered lifespan.shutdown with 'lifespan.startup.complete'",
    )
    with pytest.raises(AppProtocolError, match="no lifespan event was waiting"):
        cycle.app_sent(STOP)


@pytest.mark.parametrize(
    "steps",
    [
        ["lifespan.shutdown"],  # no shutdown without a completed startup (ASGI lifespan spec)
        ["lifespan.startup", "lifespan.startup"],
        ["lifespan.startup", {"type": "lifespan.startup.failed"}, "lifespan.shutdown"],
    ],
)
def test_events_out_of_order_are_refused(steps: list[Any]) -> None:
    with pytest.raises(CrossgateError, match="cannot be sent"):
        _cycle(*steps)
