"""The lifespan rules every crossgate lifespan driver applies. Pure.

crossgate drives an app's lifespan in three places: `ASGIToWSGI` (it is the server of the app it
wraps), the routers' fan-out (each sub-app), and the test driver ``crossgate.testing``. The ASGI
lifespan spec 2.0 says an app that does not support lifespan "should raise an exception" on the
scope, and that the server then goes on without it; it is silent on everything else an app may
do instead of answering. The rules below fill that gap the way uvicorn's ``--lifespan auto`` does
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
from dataclasses import dataclass
from typing import Any, Final

from crossgate.exceptions import AppProtocolError

__all__ = [
    "ANSWERS",
    "UNSUPPORTED_GRACE",
    "StartupOutcome",
    "StartupVerdict",
    "check_answer",
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


class StartupOutcome(enum.Enum):
    """What the driver does after the app's answer (or non-answer) to ``lifespan.startup``."""

    COMPLETE = "complete"
    """Serve, with the lifespan state the app set up."""
    FAILED = "failed"
    """Startup failed: the server must not serve (a router reports ``startup.failed``)."""
    UNSUPPORTED = "unsupported"
    """The app does not support lifespan: serve without it, shut nothing down."""


@dataclass(frozen=True, slots=True)
class StartupVerdict:
    """A `StartupOutcome` and, unless it is ``COMPLETE``, the reason to log, in words."""

    outcome: StartupOutcome
    reason: str = ""


def check_answer(waiting: str | None, message: Mapping[str, Any]) -> None:
    """Check a message the app sends on the lifespan scope; ``waiting`` is the event it answers.

    ``waiting`` is ``None`` when no event waits for an answer (the app answered it already).

    Raises:
        AppProtocolError: ``message`` is not an answer to ``waiting``; the driver raises it into
            the app, from its ``send()``, so that an app that does not speak lifespan stops.
    """
    kind = message.get("type")
    if waiting is not None and kind in ANSWERS[waiting]:
        return
    if waiting is None:
        raise AppProtocolError(
            f"the app sent {kind!r} on the lifespan scope when no lifespan event was waiting for "
            "an answer (ASGI lifespan spec: one answer per event)"
        )
    raise AppProtocolError(
        f"the app sent {kind!r} on the lifespan scope in answer to {waiting!r} (ASGI lifespan "
        f"spec: the answer is one of {', '.join(sorted(ANSWERS[waiting]))})"
    )


def judge_startup(
    answer: Mapping[str, Any] | None,
    *,
    error: BaseException | None = None,
    required: bool = False,
) -> StartupVerdict:
    """Decide what the app's answer to ``lifespan.startup`` means.

    ``answer`` is the first message the app sent, or ``None`` when it ended first: it returned,
    or raised ``error``. ``required`` makes an app without lifespan support a failure.
    """
    if answer is None:
        reason = "returned" if error is None else f"raised {error!r}"
        reason += " without answering lifespan.startup"
    else:
        kind = answer.get("type")
        if kind == "lifespan.startup.complete":
            return StartupVerdict(StartupOutcome.COMPLETE)
        if kind == "lifespan.startup.failed":
            return StartupVerdict(StartupOutcome.FAILED, str(answer.get("message") or ""))
        reason = f"sent {kind!r} in answer to lifespan.startup"
    if required:
        return StartupVerdict(
            StartupOutcome.FAILED, f"the app does not support the lifespan protocol (it {reason})"
        )
    return StartupVerdict(StartupOutcome.UNSUPPORTED, reason)
