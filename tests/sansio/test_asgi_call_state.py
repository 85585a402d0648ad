"""The phases of an ASGIToWSGI request: the transition table and the blame rule."""

from __future__ import annotations

import pytest

from crossgate.sansio.asgi_call_state import (
    TRANSITIONS,
    AppPhase,
    Cause,
    Event,
    InputPhase,
    ResponsePhase,
    ServerPhase,
    failure_cause,
    next_phase,
)

R, S = ResponsePhase, ServerPhase


@pytest.mark.parametrize(
    ("phase", "event", "expected"),
    [
        (InputPhase.READING, Event.BODY_READ, InputPhase.END),
        (InputPhase.READING, Event.BODY_TOO_LARGE, InputPhase.TOO_LARGE),
        (InputPhase.BROKEN, Event.BODY_READ, InputPhase.BROKEN),
        (R.RESPONDING, Event.RESPONSE_COMPLETE, R.COMPLETE),
        (R.RESPONDING, Event.SERVER_CLOSED, R.GONE),
        (R.COMPLETE, Event.CLIENT_GONE, R.FINISHED),
        (R.GONE, Event.RESPONSE_COMPLETE, R.GONE),
        (AppPhase.RUNNING, Event.APP_CANCELLED, AppPhase.CANCELLED),
        (AppPhase.RAISED, Event.APP_RETURNED, AppPhase.RAISED),
        (S.WAITING, Event.BODY_GIVEN, S.WAITING),
        (S.HEADERS, Event.BODY_GIVEN, S.BODY),
        (S.BODY, Event.SERVER_CLOSED, S.CLOSED),
        (S.CLOSED, Event.HEADERS_GIVEN, S.CLOSED),
    ],
)
def test_transitions(phase: object, event: Event, expected: object) -> None:
    assert next_phase(phase, event) is expected  # type: ignore[type-var]


def test_every_transition_stays_within_its_kind() -> None:
    for (phase, _), moved in TRANSITIONS.items():
        assert type(moved) is type(phase)


@pytest.mark.parametrize(
    ("body", "app", "violation", "cause"),
    [
        (InputPhase.TOO_LARGE, AppPhase.RAISED, True, Cause.TOO_LARGE),
        (InputPhase.BROKEN, AppPhase.RAISED, True, Cause.BODY_BROKEN),
        (InputPhase.END, AppPhase.RAISED, True, Cause.VIOLATION),
        (InputPhase.READING, AppPhase.RAISED, False, Cause.APP_RAISED),
        (InputPhase.END, AppPhase.CANCELLED, False, Cause.CANCELLED),
        (InputPhase.END, AppPhase.RETURNED, False, Cause.INCOMPLETE),
    ],
)
def test_the_requests_fault_comes_first_then_the_apps(
    body: InputPhase, app: AppPhase, violation: bool, cause: Cause
) -> None:
    assert failure_cause(body, app, violation=violation) is cause
