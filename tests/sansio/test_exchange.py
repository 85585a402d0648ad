"""The phases of a WSGIToASGI request: the one table of moves."""

from __future__ import annotations

import pytest

from crossgate.sansio.exchange import (
    KEEPS_BODY,
    READS_AHEAD,
    RESPONSE_QUEUED,
    WorkerEvent,
    WorkerPhase,
    next_phase,
)

Q, R, F, A = WorkerPhase.QUEUED, WorkerPhase.RUNNING, WorkerPhase.FINISHED, WorkerPhase.ABANDONED
MOVES = {
    (Q, WorkerEvent.PICKED_UP): R,
    (Q, WorkerEvent.EXPIRED): A,
    (Q, WorkerEvent.ENDED): A,
    (R, WorkerEvent.FINISHED): F,
}


@pytest.mark.parametrize("phase", list(WorkerPhase))
@pytest.mark.parametrize("event", list(WorkerEvent))
def test_next_phase(phase: WorkerPhase, event: WorkerEvent) -> None:
    # Every pair not in the table leaves the phase alone: an abandoned request is never run,
    # a timeout after a worker picked the request up changes nothing.
    assert next_phase(phase, event) is MOVES.get((phase, event), phase)


def test_what_each_phase_allows() -> None:
    assert {Q, R} == KEEPS_BODY
    assert {R, F} == READS_AHEAD
    assert {F, A} == RESPONSE_QUEUED
