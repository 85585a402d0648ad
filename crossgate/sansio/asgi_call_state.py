"""The phases of one `ASGIToWSGI` request, their transition table, what a failure is blamed on."""

from __future__ import annotations

import enum
from typing import TypeVar, cast

__all__ = [
    "TRANSITIONS",
    "AppPhase",
    "Cause",
    "Event",
    "IdentityEnum",
    "InputPhase",
    "ResponsePhase",
    "ServerPhase",
    "failure_cause",
    "next_phase",
]


class IdentityEnum(enum.Enum):
    """An enum hashed by identity in C, not by `enum.Enum`'s Python ``__hash__`` (per request)."""

    __hash__ = object.__hash__


class InputPhase(IdentityEnum):
    """The request body, read from ``wsgi.input``."""

    READING = "reading"
    END = "end"
    BROKEN = "broken"  # the input failed or ended short of CONTENT_LENGTH (400)
    TOO_LARGE = "too large"  # it outgrew max_body_size (413)


class ResponsePhase(IdentityEnum):
    """The response as the app's task sees it."""

    RESPONDING = "responding"
    COMPLETE = "complete"  # the last body message or a pathsend was sent
    GONE = "gone"  # the client or server left before it was complete (ASGI HTTP spec 2.4)
    FINISHED = "finished"  # complete, then closed or left: nothing reaches the server now


class AppPhase(IdentityEnum):
    """The app's coroutine."""

    RUNNING = "running"
    RETURNED = "returned"
    RAISED = "raised"
    CANCELLED = "cancelled"  # by the adapter (shutdown, a grace period that ran out)


class ServerPhase(IdentityEnum):
    """The WSGI server's side of the response."""

    WAITING = "waiting"  # start_response not called yet
    HEADERS = "headers"  # start_response with exc_info can still replace them (PEP 3333)
    BODY = "body"  # body bytes went out: a failure can only drop the connection
    CLOSED = "closed"  # the server called close()


class Event(IdentityEnum):
    """What moves a phase on."""

    BODY_READ = "body read"
    BODY_BROKEN = "body broken"
    BODY_TOO_LARGE = "body too large"
    RESPONSE_COMPLETE = "response complete"
    CLIENT_GONE = "client gone"
    SERVER_CLOSED = "server closed"
    APP_RETURNED = "app returned"
    APP_RAISED = "app raised"
    APP_CANCELLED = "app cancelled"
    HEADERS_GIVEN = "headers given"
    BODY_GIVEN = "body given"


P = TypeVar("P", InputPhase, ResponsePhase, AppPhase, ServerPhase)

# A pair missing here leaves the phase as it is.
TRANSITIONS: dict[tuple[IdentityEnum, Event], IdentityEnum] = {
    (InputPhase.READING, Event.BODY_READ): InputPhase.END,
    (InputPhase.READING, Event.BODY_BROKEN): InputPhase.BROKEN,
    (InputPhase.READING, Event.BODY_TOO_LARGE): InputPhase.TOO_LARGE,
    (ResponsePhase.RESPONDING, Event.RESPONSE_COMPLETE): ResponsePhase.COMPLETE,
    (ResponsePhase.RESPONDING, Event.CLIENT_GONE): ResponsePhase.GONE,
    (ResponsePhase.RESPONDING, Event.SERVER_CLOSED): ResponsePhase.GONE,
    (ResponsePhase.COMPLETE, Event.CLIENT_GONE): ResponsePhase.FINISHED,
    (ResponsePhase.COMPLETE, Event.SERVER_CLOSED): ResponsePhase.FINISHED,
    (AppPhase.RUNNING, Event.APP_RETURNED): AppPhase.RETURNED,
    (AppPhase.RUNNING, Event.APP_RAISED): AppPhase.RAISED,
    (AppPhase.RUNNING, Event.APP_CANCELLED): AppPhase.CANCELLED,
    (ServerPhase.WAITING, Event.HEADERS_GIVEN): ServerPhase.HEADERS,
    (ServerPhase.HEADERS, Event.BODY_GIVEN): ServerPhase.BODY,
    (ServerPhase.WAITING, Event.SERVER_CLOSED): ServerPhase.CLOSED,
    (ServerPhase.HEADERS, Event.SERVER_CLOSED): ServerPhase.CLOSED,
    (ServerPhase.BODY, Event.SERVER_CLOSED): ServerPhase.CLOSED,
}


def next_phase(phase: P, event: Event) -> P:
    """The phase ``phase`` moves to on ``event`` (`TRANSITIONS`)."""
    return cast(P, TRANSITIONS.get((phase, event), phase))


class Cause(enum.Enum):
    """What a response the app did not complete is blamed on (`failure_cause`)."""

    TOO_LARGE = "the request body outgrew max_body_size"
    BODY_BROKEN = "the request body could not be read to its end"
    VIOLATION = "the app broke the ASGI spec"
    APP_RAISED = "the app raised"
    CANCELLED = "the app was cancelled before completing its response"
    INCOMPLETE = "the app returned without completing its response"


_BODY_CAUSES = {InputPhase.TOO_LARGE: Cause.TOO_LARGE, InputPhase.BROKEN: Cause.BODY_BROKEN}
_APP_CAUSES = {AppPhase.RAISED: Cause.APP_RAISED, AppPhase.CANCELLED: Cause.CANCELLED}


def failure_cause(body: InputPhase, app: AppPhase, *, violation: bool) -> Cause:
    """Why a response failed: the request's fault (its 4xx), the app's breach, how the app ended."""
    if body in _BODY_CAUSES:
        return _BODY_CAUSES[body]
    return Cause.VIOLATION if violation else _APP_CAUSES.get(app, Cause.INCOMPLETE)
