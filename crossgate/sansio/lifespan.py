"""One lifespan cycle, from the server's side: its phases, and the rules that move them. Pure.

crossgate drives an app's lifespan in three places: `ASGIToWSGI` (it is the server of the app it
wraps), the routers' fan-out (each sub-app), and the test driver ``crossgate.testing``; all three
run one `LifespanCycle`, fed by one async driver (``crossgate._lifespan``). The ASGI lifespan
spec 2.0 says an app that does not support lifespan "should raise an exception" on the scope,
and that the server then goes on without it; it is silent on everything else an app may do
instead of answering. The rules below fill that gap the way uvicorn's ``--lifespan auto`` does
(``uvicorn/lifespan/on.py``), so an app behaves the same under crossgate as under uvicorn:

* only ``lifespan.startup.failed`` fails startup;
* an app that raises, returns, or sends anything but a lifespan answer (a Starlette ``Response``
  used as the whole app sends ``http.response.start`` for any scope) does not support lifespan,
  and is served without it;
* ``send()`` refuses a message that is not an answer to the event waiting for one, so such an app
  stops at once (uvicorn's ``send`` asserts the same).

With ``required=True`` (``ASGIToWSGI(lifespan="on")``, uvicorn's ``--lifespan on``) an app
without lifespan support fails startup instead.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

from crossgate.exceptions import AppProtocolError, CrossgateError

__all__ = [
    "ANSWERS",
    "TRANSITIONS",
    "UNSUPPORTED_GRACE",
    "LifespanCycle",
    "LifespanPhase",
    "judge_shutdown",
    "judge_startup",
]

UNSUPPORTED_GRACE: Final = 1.0
"""Seconds an app without lifespan support gets to end once its ``send()`` refused a message,
before the driver cancels its lifespan task: such an app (a Starlette ``Response`` used as the
app) ends on the same turn of the loop, and requests, or the other sub-apps, are waiting."""

ANSWERS: Final[Mapping[str, frozenset[str]]] = {
    "lifespan.startup": frozenset({"lifespan.startup.complete", "lifespan.startup.failed"}),
    "lifespan.shutdown": frozenset({"lifespan.shutdown.complete", "lifespan.shutdown.failed"}),
}
"""The messages that answer each lifespan event (ASGI lifespan spec, "Startup" / "Shutdown")."""


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
"""(phase, what happened) -> the next phase. What happened is an event the server sends, or
`ANSWERED`, `ENDED`, `TIMEOUT`. What the app sends or does while ``STARTING`` is judged by
`judge_startup` instead; anything missing here leaves the phase as it is."""


def judge_startup(
    answer: Mapping[str, Any] | None,
    *,
    error: BaseException | None = None,
    required: bool = False,
) -> tuple[LifespanPhase, str]:
    """The phase the app's answer to ``lifespan.startup`` leads to (``SERVING``, ``FAILED`` or
    ``UNSUPPORTED``) and, unless it is ``SERVING``, the reason, in words.

    ``answer`` is the first message the app sent, or ``None`` when it ended first: it returned,
    or raised ``error``. ``required`` makes an app without lifespan support a failure.
    """
    if answer is None:
        reason = "returned" if error is None else f"raised {error!r}"
        reason += " without answering lifespan.startup"
    else:
        kind = answer.get("type")
        if kind == "lifespan.startup.complete":
            return _P.SERVING, ""
        if kind == "lifespan.startup.failed":
            return _P.FAILED, str(answer.get("message") or "")
        reason = f"sent {kind!r} in answer to lifespan.startup"
    if required:
        return _P.FAILED, f"the app does not support the lifespan protocol (it {reason})"
    return _P.UNSUPPORTED, reason


def judge_shutdown(answer: Mapping[str, Any] | None, *, error: BaseException | None = None) -> str:
    """What went wrong at shutdown, in words; ``""`` when nothing did.

    ``answer`` is the app's first message after ``lifespan.shutdown``, or ``None`` when it ended
    first: an app that returns without answering has nothing left to shut down (not an error),
    one that raised failed.
    """
    if answer is None:
        return "" if error is None else f"raised during shutdown: {error!r}"
    kind = answer.get("type")
    if kind == "lifespan.shutdown.complete":
        return ""
    if kind == "lifespan.shutdown.failed":
        return f"failed to shut down: {answer.get('message') or ''}"
    return f"answered lifespan.shutdown with {kind!r}"


class LifespanCycle:
    """One lifespan cycle: the events sent, the app's answers judged.

    The driver tells it what it sends (`send`), what the app sends (`app_sent`), that the app's
    coroutine ended (`ended`) or that an answer did not come in time (`timed_out`); the cycle
    keeps the `LifespanPhase` and, in ``reason``, what went wrong, in words (``""`` when nothing
    did). ``required`` makes an app without lifespan support fail startup (``lifespan="on"``).
    """

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
            CrossgateError: ``event`` may not be sent now (a shutdown without a completed
                startup: ASGI lifespan spec).
        """
        if (self.phase, event) not in TRANSITIONS:
            raise CrossgateError(f"{event!r} cannot be sent in lifespan phase {self.phase.value}")
        self._move(event)
        return {"type": event}

    def app_sent(self, message: Mapping[str, Any]) -> None:
        """Judge a message the app sent.

        Raises:
            AppProtocolError: ``message`` is not an answer to the event waiting (`ANSWERS`),
                or none waits; the driver raises it into the app, from its ``send()``, so that
                an app that does not speak lifespan stops.
        """
        waiting, kind = self.waiting, message.get("type")
        if self.phase is _P.STARTING:
            self.phase, self.reason = judge_startup(message, required=self.required)
        elif self.phase is _P.STOPPING:
            self.reason = judge_shutdown(message)
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
        if self.phase is _P.STARTING:
            self.phase, self.reason = judge_startup(None, error=error, required=self.required)
        elif self.phase is _P.STOPPING:
            self.reason = judge_shutdown(None, error=error)
        self._move(ENDED)

    def timed_out(self, timeout: float) -> None:
        """The answer to the event waiting did not come within ``timeout`` seconds."""
        if self.waiting is not None:
            self.reason = f"did not complete {self.waiting} within {timeout:g} s"
        self._move(TIMEOUT)
