"""One lifespan cycle, from the server's side, by uvicorn's ``--lifespan auto`` rules. Pure."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

from crossgate.exceptions import AppProtocolError, CrossgateError

__all__ = ["TRANSITIONS", "UNSUPPORTED_GRACE", "LifespanCycle", "LifespanPhase"]

UNSUPPORTED_GRACE: Final = 1.0
"""Seconds an app without lifespan support gets to end before the driver cancels it."""

ANSWERS: Final[Mapping[str, frozenset[str]]] = {
    "lifespan.startup": frozenset({"lifespan.startup.complete", "lifespan.startup.failed"}),
    "lifespan.shutdown": frozenset({"lifespan.shutdown.complete", "lifespan.shutdown.failed"}),
}
"""The messages that answer each lifespan event (ASGI lifespan spec)."""


class LifespanPhase(enum.Enum):
    """Where one lifespan cycle stands, as the server side sees it."""

    IDLE = "idle"  # nothing sent yet
    STARTING = "starting"  # lifespan.startup sent, not answered
    SERVING = "serving"  # startup complete: serve; lifespan.shutdown may follow
    STOPPING = "stopping"  # lifespan.shutdown sent, not answered
    STOPPED = "stopped"  # shutdown answered, or the app ended: nothing left to shut down
    FAILED = "failed"  # startup failed: do not serve; no shutdown follows (ASGI lifespan spec)
    UNSUPPORTED = "unsupported"  # no lifespan support: serve without it; no shutdown follows


_P = LifespanPhase
ANSWERED: Final = "answered"  # the app answered the event waiting (or sent something else)
ENDED: Final = "ended"  # the app's lifespan coroutine returned or raised
TIMEOUT: Final = "timeout"  # the answer did not come in time

TRANSITIONS: Final[Mapping[tuple[LifespanPhase, str], LifespanPhase]] = {
    (_P.IDLE, "lifespan.startup"): _P.STARTING,
    (_P.STARTING, TIMEOUT): _P.FAILED,
    (_P.SERVING, "lifespan.shutdown"): _P.STOPPING,
    (_P.SERVING, ENDED): _P.STOPPED,
    (_P.STOPPING, ANSWERED): _P.STOPPED,
    (_P.STOPPING, ENDED): _P.STOPPED,
    (_P.STOPPING, TIMEOUT): _P.STOPPED,
}
"""(phase, event sent or what happened) -> next phase; the answer to a startup is judged apart."""


class LifespanCycle:
    """One lifespan cycle: its `LifespanPhase` and ``reason`` (what went wrong, or ``""``);
    ``required`` (``lifespan="on"``) makes an app without lifespan support fail startup."""

    __slots__ = ("phase", "reason", "required")

    def __init__(self, *, required: bool = False) -> None:
        self.phase = LifespanPhase.IDLE
        self.required = required
        self.reason = ""

    @property
    def waiting(self) -> str | None:
        """The event waiting for the app's answer, if any."""
        if self.phase is _P.STARTING:
            return "lifespan.startup"
        return "lifespan.shutdown" if self.phase is _P.STOPPING else None

    def _move(self, happened: str) -> None:
        self.phase = TRANSITIONS.get((self.phase, happened), self.phase)

    def send(self, event: str) -> dict[str, Any]:
        """The ``event`` message for the app.

        Raises:
            CrossgateError: ``event`` may not be sent now (a shutdown before startup completed).
        """
        if (self.phase, event) not in TRANSITIONS:
            raise CrossgateError(f"{event!r} cannot be sent in lifespan phase {self.phase.value}")
        self._move(event)
        return {"type": event}

    def app_sent(self, message: Mapping[str, Any]) -> None:
        """Judge a message the app sent.

        Raises:
            AppProtocolError: ``message`` answers no event waiting (`ANSWERS`).
        """
        waiting, kind = self.waiting, message.get("type")
        self._judge(message, None)
        self._move(ANSWERED)
        if waiting is None:
            raise AppProtocolError(
                f"the app sent {kind!r} on the lifespan scope when no lifespan event was waiting "
                "for an answer (ASGI lifespan spec: one answer per event)"
            )
        if kind not in ANSWERS[waiting]:
            raise AppProtocolError(
                f"the app sent {kind!r} on the lifespan scope in answer to {waiting!r} (ASGI "
                f"lifespan spec: the answer is one of {', '.join(sorted(ANSWERS[waiting]))})"
            )

    def ended(self, error: BaseException | None) -> None:
        """The app's lifespan coroutine returned, or raised ``error``."""
        self._judge(None, error)
        self._move(ENDED)

    def _judge(self, answer: Mapping[str, Any] | None, error: BaseException | None) -> None:
        if self.phase is _P.STARTING:
            if answer is None:
                reason = "returned" if error is None else f"raised {error!r}"
                reason += " without answering lifespan.startup"
            elif (kind := answer.get("type")) == "lifespan.startup.complete":
                self.phase = _P.SERVING
                return
            elif kind == "lifespan.startup.failed":
                self.phase, self.reason = _P.FAILED, str(answer.get("message") or "")
                return
            else:
                reason = f"sent {kind!r} in answer to lifespan.startup"
            if self.required:
                self.phase = _P.FAILED
                self.reason = f"the app does not support the lifespan protocol (it {reason})"
            else:
                self.phase, self.reason = _P.UNSUPPORTED, reason
        elif self.phase is _P.STOPPING:
            # Returning without an answer is no error: nothing is left to shut down.
            kind = None if answer is None else answer.get("type")
            if answer is None:
                self.reason = "" if error is None else f"raised during shutdown: {error!r}"
            elif kind == "lifespan.shutdown.failed":
                self.reason = f"failed to shut down: {answer.get('message') or ''}"
            elif kind != "lifespan.shutdown.complete":
                self.reason = f"answered lifespan.shutdown with {kind!r}"

    def timed_out(self, timeout: float) -> None:
        """The answer to the event waiting did not come within ``timeout`` seconds."""
        if self.waiting is not None:
            self.reason = f"did not complete {self.waiting} within {timeout:g} s"
        self._move(TIMEOUT)
