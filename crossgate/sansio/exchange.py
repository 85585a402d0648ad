"""The phases of one `WSGIToASGI` request and their one transition table. Pure."""

from __future__ import annotations

from crossgate.sansio.asgi_call_state import IdentityEnum

__all__ = [
    "KEEPS_BODY",
    "READS_AHEAD",
    "RESPONSE_QUEUED",
    "BodyPhase",
    "WorkerEvent",
    "WorkerPhase",
    "next_phase",
]


class WorkerPhase(IdentityEnum):
    """Where a request stands with the worker pool."""

    QUEUED = "queued"  # handed to the pool, not picked up yet
    RUNNING = "running"  # a worker runs the app
    FINISHED = "finished"  # the whole response, or its failure, is queued for the loop
    ABANDONED = "abandoned"  # never run: waited past queue_timeout (503), or ended while queued


class WorkerEvent(IdentityEnum):
    """What moves a request from one `WorkerPhase` to the next."""

    PICKED_UP = "a worker picked the request up"
    FINISHED = "the worker finished the response"
    EXPIRED = "the request waited past queue_timeout"
    ENDED = "the loop is done with the request"


# A pair missing here leaves the phase as it is: an abandoned request is never run.
_TRANSITIONS: dict[tuple[WorkerPhase, WorkerEvent], WorkerPhase] = {
    (WorkerPhase.QUEUED, WorkerEvent.PICKED_UP): WorkerPhase.RUNNING,
    (WorkerPhase.QUEUED, WorkerEvent.EXPIRED): WorkerPhase.ABANDONED,
    (WorkerPhase.QUEUED, WorkerEvent.ENDED): WorkerPhase.ABANDONED,
    (WorkerPhase.RUNNING, WorkerEvent.FINISHED): WorkerPhase.FINISHED,
}

KEEPS_BODY = frozenset({WorkerPhase.QUEUED, WorkerPhase.RUNNING})
"""Phases in which request bytes are kept for the app; later, arriving bytes are dropped."""

READS_AHEAD = frozenset({WorkerPhase.RUNNING, WorkerPhase.FINISHED})
"""Phases in which the body is read ahead of the app (not while queued: the upload would wait)."""

RESPONSE_QUEUED = frozenset({WorkerPhase.FINISHED, WorkerPhase.ABANDONED})
"""Phases in which the whole response is queued for the loop."""


class BodyPhase(IdentityEnum):
    """Where the request body stands (ASGI HTTP spec, ``http.request``'s ``more_body``)."""

    RECEIVING = "receiving"
    COMPLETE = "complete"  # the last http.request message arrived
    REFUSED = "refused"  # broke max_body_size: a read past the limit raises the meter's error


def next_phase(phase: WorkerPhase, event: WorkerEvent) -> WorkerPhase:
    """The phase ``event`` moves a request in ``phase`` to."""
    return _TRANSITIONS.get((phase, event), phase)
