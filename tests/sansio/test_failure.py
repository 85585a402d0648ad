"""`plan_failure` and `body_chunk`: what a failed response becomes, as a table."""

from __future__ import annotations

import logging

import pytest

from crossgate.exceptions import (
    AppProtocolError,
    ClientDisconnected,
    CrossgateError,
    PeerProtocolError,
    RequestTooLarge,
)
from crossgate.sansio.failure import Outcome, RaisePoint, plan_failure, wsgi_raise_point
from crossgate.sansio.response import body_chunk

APP_ERROR = RuntimeError("boom")
VIOLATION = AppProtocolError("a str body chunk")


@pytest.mark.parametrize(
    ("error", "state", "outcome", "status", "propagate"),
    [
        # The app's exception: a 500 before the headers, an abort after, nothing to add
        # once the response was complete; raised to the server in each case.
        (APP_ERROR, {}, Outcome.ERROR_PAGE, 500, True),
        (APP_ERROR, {"headers_sent": True}, Outcome.ABORT, None, True),
        (APP_ERROR, {"headers_sent": True, "complete": True}, Outcome.COMPLETE, None, True),
        (APP_ERROR, {"client_gone": True}, Outcome.CLIENT_GONE, None, True),
        # crossgate's protocol errors are the app's bugs: the same rules.
        (VIOLATION, {}, Outcome.ERROR_PAGE, 500, True),
        (VIOLATION, {"headers_sent": True}, Outcome.ABORT, None, True),
        # The request's fault: its 4xx, never raised.
        (RequestTooLarge.for_limit(10), {}, Outcome.ERROR_PAGE, 413, False),
        (PeerProtocolError("bad body"), {}, Outcome.ERROR_PAGE, 400, False),
        (RequestTooLarge.for_limit(10), {"headers_sent": True}, Outcome.ABORT, None, False),
        # The client left: nothing to answer, nothing to raise (ASGI "Disconnected Client").
        (ClientDisconnected("gone"), {"client_gone": True}, Outcome.CLIENT_GONE, None, False),
        # The adapter's own doing (it cancelled the app): answered, not raised.
        (CrossgateError("cancelled"), {}, Outcome.ERROR_PAGE, 500, False),
        # sys.exit() in a worker thread must not stop the server's event loop.
        (SystemExit(1), {}, Outcome.ERROR_PAGE, 500, False),
        (KeyboardInterrupt(), {"headers_sent": True}, Outcome.ABORT, None, False),
    ],
)
def test_plan(
    error: BaseException,
    state: dict[str, bool],
    outcome: Outcome,
    status: int | None,
    propagate: bool,
) -> None:
    plan = plan_failure(
        error,
        app="WSGI",
        headers_sent=state.get("headers_sent", False),
        complete=state.get("complete", False),
        client_gone=state.get("client_gone", False),
    )
    assert plan.outcome is outcome
    assert plan.status == status
    assert plan.propagate is propagate


def test_option_off_never_propagates_and_logs_the_traceback() -> None:
    plan = plan_failure(APP_ERROR, app="ASGI", raise_app_exceptions=False)
    assert plan.outcome is Outcome.ERROR_PAGE
    assert not plan.propagate
    assert plan.level == logging.ERROR
    assert plan.traceback
    assert plan.message == (
        "the ASGI app raised RuntimeError: boom before the response headers were sent; "
        "the client got a 500"
    )


def test_raised_on_the_server_logs_it_so_crossgate_only_says_what_the_client_got() -> None:
    plan = plan_failure(APP_ERROR, app="WSGI", headers_sent=True)
    assert plan.level == logging.INFO
    assert not plan.traceback
    assert plan.message == (
        "the WSGI app raised RuntimeError: boom after the response headers were sent; the "
        "connection was aborted, and the exception was raised to the server"
    )


@pytest.mark.parametrize(
    ("http_version", "propagate", "headers"),
    [
        ("1.1", True, ((b"connection", b"close"),)),
        ("1.0", True, ((b"connection", b"close"),)),
        ("2", True, ()),  # connection-specific fields are forbidden in HTTP/2
        ("1.1", False, ()),  # not raised: the server keeps the connection
        (None, True, ()),
    ],
)
def test_error_page_before_a_raise_closes_the_connection(
    http_version: str | None, propagate: bool, headers: tuple[tuple[bytes, bytes], ...]
) -> None:
    plan = plan_failure(
        APP_ERROR, app="WSGI", raise_app_exceptions=propagate, http_version=http_version
    )
    assert plan.headers == headers


def test_peer_errors_carry_their_reason_for_the_page() -> None:
    plan = plan_failure(RequestTooLarge.for_limit(10), app="WSGI")
    assert plan.detail == "request body is larger than 10 bytes"
    assert plan.message == "answering 413: request body is larger than 10 bytes"


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        (b"abc", b"abc"),
        (bytearray(b"abc"), b"abc"),
        (memoryview(b"abc"), b"abc"),
        (b"", b""),
    ],
)
def test_body_chunk_accepts_bytes_like(chunk: object, expected: bytes) -> None:
    result = body_chunk(chunk)
    assert type(result) is bytes
    assert result == expected


@pytest.mark.parametrize(
    ("chunk", "name"), [("abc", "str"), (1, "int"), (None, "NoneType"), ([b"a"], "list")]
)
def test_body_chunk_names_what_is_not_bytes(chunk: object, name: str) -> None:
    with pytest.raises(AppProtocolError, match=f"of type {name}, not bytes"):
        body_chunk(chunk)


@pytest.mark.parametrize(
    ("headers_given", "complete", "point"),
    [
        (False, False, RaisePoint.CALL),
        (True, False, RaisePoint.ITERABLE),
        # A complete response goes out whole first, even when the server has nothing yet:
        # raised from the call, the server's generic 500 would replace the app's own page.
        (False, True, RaisePoint.CLOSE),
        (True, True, RaisePoint.CLOSE),
    ],
)
def test_wsgi_raise_point(headers_given: bool, complete: bool, point: RaisePoint) -> None:
    assert wsgi_raise_point(headers_given=headers_given, complete=complete) is point
