"""The phases of one `WSGIToASGI` request and the one table of moves between them. Pure.

A request goes to a pool of worker threads and may wait there; its body arrives on the event
loop while a worker reads it. `crossgate.adapters._exchange.WorkerExchange` keeps the lock, the
buffers and the wake-ups; which phase follows which, and what each phase allows, lives here,
as h11 keeps its states in ``_state.py``.
"""

from __future__ import annotations

import enum

__all__ = [
    "KEEPS_BODY",
    "READS_AHEAD",
    "RESPONSE_QUEUED",
    "BodyPhase",
    "WorkerEvent",
    "WorkerPhase",
    "next_phase",
]


class WorkerPhase(enum.Enum):
    """Where a request stands with the worker pool."""

    # Members are singletons: hashed by identity in C, not by `enum.Enum.__hash__` in Python,
    # the table and the sets below cost no Python call on the per-request path.
    __hash__ = object.__hash__

    QUEUED = "queued"
    """Handed to the pool; no worker has picked it up yet."""
    RUNNING = "running"
    """A worker runs the app."""
    FINISHED = "finished"
    """The worker is done: the whole response, or its failure, is queued for the loop."""
    ABANDONED = "abandoned"
    """No worker will ever run the app: the request waited past ``queue_timeout`` (its 503 is
    queued) or ended while it waited (the client left, the server cancelled it)."""


class WorkerEvent(enum.Enum):
    """What moves a request from one `WorkerPhase` to the next."""

    __hash__ = object.__hash__  # as `WorkerPhase.__hash__`

    PICKED_UP = "a worker picked the request up"
    FINISHED = "the worker finished the response"
    EXPIRED = "the request waited past queue_timeout"
    ENDED = "the loop is done with the request"


# Pairs missing from the table leave the phase as it is: a worker that comes for an abandoned
# request does not run it, a timeout after a worker picked the request up changes nothing.
_TRANSITIONS: dict[tuple[WorkerPhase, WorkerEvent], WorkerPhase] = {
    (WorkerPhase.QUEUED, WorkerEvent.PICKED_UP): WorkerPhase.RUNNING,
    (WorkerPhase.QUEUED, WorkerEvent.EXPIRED): WorkerPhase.ABANDONED,
    (WorkerPhase.QUEUED, WorkerEvent.ENDED): WorkerPhase.ABANDONED,
    (WorkerPhase.RUNNING, WorkerEvent.FINISHED): WorkerPhase.FINISHED,
}

KEEPS_BODY = frozenset({WorkerPhase.QUEUED, WorkerPhase.RUNNING})
"""Phases in which request bytes are kept for the app; after them nobody reads the body (an app
may answer without reading all of it), so arriving bytes are dropped."""

READS_AHEAD = frozenset({WorkerPhase.RUNNING, WorkerPhase.FINISHED})
"""Phases in which the body is read ahead of the app (a queued request reads none: hundreds of
queued uploads would each hold the read-ahead). After ``FINISHED`` the bytes are dropped as they
come, and the pending ``receive()`` keeps watching for ``http.disconnect``."""

RESPONSE_QUEUED = frozenset({WorkerPhase.FINISHED, WorkerPhase.ABANDONED})
"""Phases in which the whole response is queued for the loop: no worker adds to it."""


class BodyPhase(enum.Enum):
    """Where the request body stands (ASGI HTTP spec, ``http.request``'s ``more_body``)."""

    RECEIVING = "receiving"
    COMPLETE = "complete"
    """The last ``http.request`` message arrived."""
    REFUSED = "refused"
    """The body broke ``max_body_size`` (`crossgate.sansio.body_limit.BodyMeter`): no byte past
    the limit is ever kept, and a read that needs one raises the meter's error."""


def next_phase(phase: WorkerPhase, event: WorkerEvent) -> WorkerPhase:
    """The phase ``event`` moves a request in ``phase`` to (the same one when it does not move)."""
    return _TRANSITIONS.get((phase, event), phase)
