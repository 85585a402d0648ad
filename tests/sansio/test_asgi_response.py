"""ASGI ``http.response.*`` messages -> WSGI (``crossgate.sansio.asgi_response``)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossgate.exceptions import AppProtocolError
from crossgate.sansio import asgi_response
from crossgate.sansio.asgi_response import (
    Body,
    ResponseCycle,
    SendFile,
    Start,
    error_response,
    status_line,
    wsgi_headers,
)

PROPERTY = settings(max_examples=300, deadline=None)

START: dict[str, Any] = {"type": "http.response.start", "status": 200, "headers": []}


@pytest.mark.parametrize(
    ("status", "line"),
    [(200, "200 OK"), (404, "404 Not Found"), (299, "299 Unknown"), (599, "599 Unknown")],
)
def test_status_line(status: int, line: str) -> None:
    assert status_line(status) == line


@pytest.mark.parametrize("status", [100, 101, 199, 600, 0, -1, True, "200", 200.0, None])
def test_status_outside_200_599_or_not_an_int_is_an_app_error(status: object) -> None:
    # WSGI cannot send interim responses (PEP 3333 has no way to), and a bool is not a status.
    with pytest.raises(AppProtocolError):
        status_line(status)


def test_headers_are_decoded_and_keep_their_case() -> None:
    headers = wsgi_headers(
        [
            (b"Content-Type", b"text/plain"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
            (b"x-latin", b"caf\xe9"),
            (b"x-padded", b" \tvalue\t "),
        ]
    )

    assert headers == [
        ("Content-Type", "text/plain"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("x-latin", "caf\xe9"),
        ("x-padded", "value"),
    ]


@pytest.mark.parametrize(
    "name",
    [b"connection", b"Keep-Alive", b"transfer-encoding", b"Upgrade", b"te", b"trailer"],
)
def test_hop_by_hop_headers_are_dropped(name: bytes) -> None:
    # PEP 3333 forbids them to WSGI apps; ASGI says the server ignores Transfer-Encoding.
    assert wsgi_headers([(name, b"x"), (b"x-kept", b"1")]) == [("x-kept", "1")]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x", b"a\r\nInjected: 1")],
        [(b"x", b"a\nb")],
        [(b"x", b"a\x00")],
        [(b"bad name", b"1")],
        [(b"", b"1")],
        [("x", b"1")],
        [(b"x", "1")],
        [(b"x",)],
        [b"xy"],
        [1],
        42,
        b"x: 1",
        "x: 1",
    ],
)
def test_bad_headers_are_app_errors(headers: object) -> None:
    with pytest.raises(AppProtocolError):
        wsgi_headers(headers)


def test_a_full_response() -> None:
    cycle = ResponseCycle()

    start = cycle.feed({**START, "headers": [(b"content-type", b"text/plain")]})
    first = cycle.feed({"type": "http.response.body", "body": b"a", "more_body": True})
    last = cycle.feed({"type": "http.response.body", "body": bytearray(b"b")})

    assert start == Start("200 OK", [("content-type", "text/plain")])
    assert first == Body(b"a", True)
    assert last == Body(b"b", False)
    assert type(last.data) is bytes
    assert cycle.complete


def test_messages_after_the_response_are_ignored() -> None:
    # ASGI HTTP spec, "Response Body": once complete, "any further messages on the channel
    # will be ignored" (http.response.trailers from an app that asked for them, for example).
    cycle = ResponseCycle()
    cycle.feed(START)
    cycle.feed({"type": "http.response.body"})

    assert cycle.feed({"type": "http.response.body", "body": b"late"}) is None
    assert cycle.feed({"type": "http.response.trailers", "headers": []}) is None
    assert cycle.feed(START) is None


def test_pathsend_right_after_start() -> None:
    cycle = ResponseCycle()
    cycle.feed(START)

    assert cycle.feed({"type": "http.response.pathsend", "path": "/srv/file"}) == SendFile(
        "/srv/file"
    )
    assert cycle.complete


@pytest.mark.parametrize(
    ("before", "message"),
    [
        ([], {"type": "http.response.body", "body": b"x"}),
        ([], {"type": "http.response.pathsend", "path": "/x"}),
        ([START], START),
        (
            [START, {"type": "http.response.body", "more_body": True}],
            {"type": "http.response.pathsend", "path": "/x"},
        ),
        ([START], {"type": "http.response.pathsend", "path": "relative"}),
        ([START], {"type": "http.response.pathsend", "path": b"/x"}),
        ([START], {"type": "http.response.body", "body": "text"}),
        ([START], {"type": "http.response.zerocopysend", "file": None}),
        ([], {"type": "websocket.accept"}),
        ([], {"status": 200}),
        ([], None),
        ([], {**START, "status": "200"}),
        ([], {**START, "headers": [(b"x", b"\n")]}),
    ],
)
def test_out_of_order_or_malformed_messages_are_app_errors(
    before: list[dict[str, Any]], message: Any
) -> None:
    cycle = ResponseCycle()
    for earlier in before:
        cycle.feed(earlier)
    state = (cycle.started, cycle.body_started, cycle.complete)

    with pytest.raises(AppProtocolError):
        cycle.feed(message)
    # A refused message changes nothing.
    assert (cycle.started, cycle.body_started, cycle.complete) == state


def test_error_response() -> None:
    status, headers, body = error_response(413, "request body is larger than 10 bytes")

    # The phrase is the running Python's (3.13 renamed 413 "Content Too Large", RFC 9110).
    phrase = HTTPStatus(413).phrase
    assert status == f"413 {phrase}"
    assert body == f"413 {phrase}: request body is larger than 10 bytes\n".encode()
    assert ("content-type", "text/plain; charset=utf-8") in headers
    assert ("content-length", str(len(body))) in headers


_atoms = st.one_of(
    st.binary(max_size=6), st.text(max_size=6), st.integers(), st.none(), st.booleans()
)
_messages = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["http.response.start", "http.response.body", "http.response.pathsend", "x"]
            )
        },
        optional={
            "status": st.one_of(st.integers(min_value=0, max_value=700), _atoms),
            "headers": st.one_of(
                st.lists(st.tuples(_atoms, _atoms), max_size=3),
                st.lists(st.tuples(st.binary(max_size=6), st.binary(max_size=6)), max_size=3),
                _atoms,
            ),
            "body": _atoms,
            "more_body": _atoms,
            "path": st.one_of(_atoms, st.text(max_size=6).map(lambda t: "/" + t)),
        },
    ),
    _atoms,
)


@PROPERTY
@given(messages=st.lists(_messages, max_size=6))
def test_any_messages_give_events_or_app_errors(messages: list[Any]) -> None:
    cycle = ResponseCycle()
    for message in messages:
        try:
            event = cycle.feed(message)
        except AppProtocolError:
            continue
        if event is None:
            assert cycle.complete
        elif isinstance(event, Start):
            assert cycle.started
            assert event.status[:3].isdigit()
            assert 200 <= int(event.status[:3]) <= 599
            for name, value in event.headers:
                assert type(name) is str
                assert type(value) is str
                assert not {"\r", "\n", "\x00"} & set(value)
        elif isinstance(event, Body):
            assert type(event.data) is bytes
            assert cycle.complete is not event.more
        else:
            assert cycle.complete


def test_a_value_seen_before_is_still_stripped_and_decoded() -> None:
    first = wsgi_headers([(b"Cache-Control", b" no-store\t")])
    again = wsgi_headers([(b"X-Other", b" no-store\t"), (b"X-Latin", b"caf\xe9")])
    assert first == [("Cache-Control", "no-store")]
    assert again == [("X-Other", "no-store"), ("X-Latin", "caf\xe9")]


def test_a_value_with_cr_or_lf_is_refused_every_time() -> None:
    for _ in range(2):  # never remembered as valid
        with pytest.raises(AppProtocolError, match="header injection"):
            wsgi_headers([(b"X-A", b"a\r\nSet-Cookie: b=1")])


def test_remembered_pairs_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asgi_response, "_PAIRS", {})
    monkeypatch.setattr(asgi_response, "_PAIRS_MAX", 8)
    for number in range(20):
        # Values that never repeat, as a session cookie's.
        assert wsgi_headers([(b"Set-Cookie", b"id=%d" % number)]) == [
            ("Set-Cookie", f"id={number}")
        ]
        assert len(asgi_response._PAIRS) <= 8


def test_a_remembered_hop_by_hop_header_is_still_dropped() -> None:
    for _ in range(2):
        assert wsgi_headers([(b"Connection", b"close"), (b"X-A", b"1")]) == [("X-A", "1")]


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_bytes_like_names_and_values_are_taken_seen_before_or_not(kind: type) -> None:
    # Equal to a remembered pair (the first call) or not (the second): the same answer.
    for value in (b"text/plain", b"text/x-%d" % id(kind)):
        assert wsgi_headers([(kind(b"Content-Type"), kind(value))]) == [
            ("Content-Type", value.decode())
        ]
        assert wsgi_headers([(b"Content-Type", value)]) == [("Content-Type", value.decode())]


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ([b"X-A", [1]], "must be bytes|not bytes"),  # unhashable, and not a pair of bytes
        ((b"X-A", "text"), "not bytes"),
        (("X-A", b"text"), "must be bytes"),
        ((b"X-A",), "pair"),
        ((b"X A", b"1"), "invalid response header name"),
    ],
)
def test_a_bad_header_is_refused_every_time(header: object, error: str) -> None:
    for _ in range(2):  # never remembered as valid
        with pytest.raises(AppProtocolError, match=error):
            wsgi_headers([header])


# --- issue 19: the app's Content-Length ------------------------------------------------------


def _start(*lengths: bytes, status: int = 200) -> dict[str, Any]:
    headers = [(b"content-length", value) for value in lengths]
    return {"type": "http.response.start", "status": status, "headers": headers}


def _body(data: Any, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


@pytest.mark.parametrize(
    ("chunks", "sent", "dropped"),
    [
        ([(b"\x00", False)], [b""], 1),  # the fuzz minimum of issue 19, Content-Length 0
        ([(b"abcdefgh", True)], [b"abc"], 5),
        ([(b"ab", True), (b"cdef", True)], [b"ab", b"c"], 3),
        ([(b"abc", True)], [b"abc"], 0),  # exactly the length: complete, even with more_body
    ],
)
def test_body_is_clamped_to_the_declared_length(
    chunks: list[tuple[bytes, bool]], sent: list[bytes], dropped: int
) -> None:
    cycle = ResponseCycle()
    length = b"0" if chunks[0][0] == b"\x00" else b"3"
    assert cycle.feed(_start(length)) is not None
    events = [cycle.feed(_body(data, more)) for data, more in chunks]
    bodies = [event for event in events if event is not None]
    assert [b.data for b in bodies] == sent  # type: ignore[union-attr]
    assert bodies[-1].more is False  # type: ignore[union-attr]
    assert cycle.complete
    assert cycle.dropped == dropped


def test_body_sent_after_the_length_was_reached_counts_as_dropped() -> None:
    cycle = ResponseCycle()
    cycle.feed(_start(b"2"))
    cycle.feed(_body(b"ab", True))
    assert cycle.feed(_body(b"more", True)) is None
    assert cycle.feed(_body("not bytes")) is None  # ignored like any message after the end
    assert cycle.feed({"type": "http.response.trailers"}) is None
    assert cycle.dropped == 4


@pytest.mark.parametrize(
    "lengths", [(b"1", b"0"), (b"-1",), (b"",), (b"1e3",), (b"9" * 5000,), (b"\xd9\xa5",)]
)
def test_invalid_or_conflicting_lengths_are_refused_at_the_start(
    lengths: tuple[bytes, ...],
) -> None:
    cycle = ResponseCycle()
    with pytest.raises(AppProtocolError, match="Content-Length"):
        cycle.feed(_start(*lengths))
    assert not cycle.started  # state unchanged: the adapter can still answer 500


def test_a_body_short_of_its_length_is_refused() -> None:
    cycle = ResponseCycle()
    cycle.feed(_start(b"5"))
    cycle.feed(_body(b"ab", True))
    with pytest.raises(AppProtocolError, match="2 bytes short"):
        cycle.feed(_body(b"c"))
    assert not cycle.complete


@pytest.mark.parametrize(("head", "status"), [(True, 200), (False, 204), (False, 304)])
def test_head_204_and_304_keep_a_length_without_a_body(head: bool, status: int) -> None:
    cycle = ResponseCycle(head=head)
    cycle.feed(_start(b"10", status=status))
    event = cycle.feed(_body(b""))
    assert event is not None
    assert cycle.complete


def test_the_adapter_and_the_strict_checker_differ_only_where_documented() -> None:
    # The adapter (not strict) takes Django's "Content-Type", ignores what follows the end,
    # drops bytes past the Content-Length, and knows no zerocopysend (it never offers it).
    start = {"type": "http.response.start", "status": 200, "headers": [(b"Content-Length", b"2")]}
    cycle = ResponseCycle()
    assert cycle.feed(start) is not None
    assert cycle.feed({"type": "http.response.body", "body": b"long"}) == Body(b"lo", False)
    assert cycle.feed({"type": "http.response.body", "body": b"more"}) is None
    assert cycle.dropped == 6
    with pytest.raises(AppProtocolError, match="zerocopysend"):
        ResponseCycle().feed({"type": "http.response.zerocopysend", "file": 3})
    strict = ResponseCycle(strict=True, zerocopysend=True)
    with pytest.raises(AppProtocolError, match="lower-case"):
        strict.feed(start)
    assert not strict.started
