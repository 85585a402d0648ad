"""``start_response`` semantics -> ``http.response.*`` events (``crossgate.sansio.response``).

Table-driven; the PEP 3333 rules come from "The start_response() Callable" and "Error Handling".
"""

from __future__ import annotations

import sys

import pytest

from crossgate.exceptions import AppProtocolError
from crossgate.sansio.headers import encode_response_headers
from crossgate.sansio.response import (
    OptExcInfo,
    ResponseState,
    error_events,
    file_send_event,
    parse_status,
)
from crossgate.testing import HTTPConformanceChecker

# --- parse_status ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("200 OK", 200),
        ("404 Not Found", 404),
        ("500 Internal Server Error", 500),
        ("299 Custom Thing", 299),
        ("599 Network Connect Timeout Error", 599),
        # The reason phrase is free text (RFC 9112 section 4); ASGI does not even send it.
        ("418 I'm a teapot", 418),
        ("200 \xe9t\xe9", 200),
    ],
)
def test_parse_status_accepts(status: str, code: int) -> None:
    assert parse_status(status) == code


@pytest.mark.parametrize(
    "status",
    [
        # PEP 3333: "a string like '999 Message here'", a native str.
        pytest.param(200, id="int"),
        pytest.param(b"200 OK", id="bytes"),
        pytest.param(None, id="None"),
        pytest.param(("200", "OK"), id="tuple"),
        pytest.param("200", id="no-reason"),
        pytest.param("", id="empty"),
        pytest.param("20 OK", id="two-digits"),
        pytest.param("2000 OK", id="four-digits"),
        pytest.param("abc OK", id="letters"),
        pytest.param("200OK", id="no-space"),
        pytest.param(" 200 OK", id="leading-space"),
        pytest.param("+20 OK", id="sign"),
        pytest.param("\uff12\uff10\uff10 OK", id="fullwidth-digits"),
        pytest.param("\xb2\xb2\xb2 OK", id="superscript-digits"),
        # A CR or LF would let the app write its own header lines (response splitting).
        pytest.param("200 OK\r\nSet-Cookie: x=1", id="crlf"),
        pytest.param("200 O\nK", id="lf"),
        pytest.param("200 O\rK", id="cr"),
        pytest.param("200 OK\x00", id="nul"),
        # WSGI has no way to send an interim response; 6xx does not exist (RFC 9110 15).
        pytest.param("100 Continue", id="100"),
        pytest.param("101 Switching Protocols", id="101"),
        pytest.param("199 Whatever", id="199"),
        pytest.param("099 Low", id="099"),
        pytest.param("600 Too High", id="600"),
        pytest.param("999 Message here", id="999"),
    ],
)
def test_parse_status_rejects(status: object) -> None:
    with pytest.raises(AppProtocolError) as info:
        parse_status(status)
    assert info.value.status_code == 500


# --- encode_response_headers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "encoded"),
    [
        ([], []),
        # The ASGI spec (http.response.start) wants lower-case byte names.
        ([("Content-Type", "text/plain")], [(b"content-type", b"text/plain")]),
        ([("X-UPPER", "V")], [(b"x-upper", b"V")]),
        # PEP 3333 values hold latin-1 code points, sent as those bytes.
        ([("X-Name", "caf\xe9")], [(b"x-name", b"caf\xe9")]),
        ([("X-Empty", "")], [(b"x-empty", b"")]),
        ([("X-Tab", "a\tb")], [(b"x-tab", b"a\tb")]),
        # RFC 9110 section 5.5: leading and trailing whitespace is not part of a field value
        # (h11 refuses it); Django's cookies come out as " name=value".
        ([("Set-Cookie", " a=1")], [(b"set-cookie", b"a=1")]),
        ([("X-A", "\t v \t")], [(b"x-a", b"v")]),
        ([("X-A", "   ")], [(b"x-a", b"")]),
        # Order and repeats are preserved (Set-Cookie must never be joined).
        (
            [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-A", "1")],
            [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"x-a", b"1")],
        ),
        # Every RFC 9110 token character is allowed in a name.
        ([("!#$%&'*+-.^_`|~09Az", "v")], [(b"!#$%&'*+-.^_`|~09az", b"v")]),
    ],
)
def test_encode_response_headers(
    headers: list[tuple[str, str]], encoded: list[tuple[bytes, bytes]]
) -> None:
    assert encode_response_headers(headers) == encoded


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(None, id="None"),
        pytest.param("Content-Type: text/plain", id="str"),
        pytest.param(b"content-type: text/plain", id="bytes"),
        pytest.param({"Content-Type": "text/plain"}, id="dict"),
        pytest.param(iter([("Content-Type", "text/plain")]), id="iterator"),
        # Items that are not pairs.
        pytest.param(["Content-Type: text/plain"], id="item-str"),
        pytest.param([("Content-Type",)], id="item-one"),
        pytest.param([("X-A", "1", "2")], id="item-three"),
        pytest.param([None], id="item-None"),
        # PEP 3333: "header_name and header_value must be native strings".
        pytest.param([(b"X-A", "1")], id="name-bytes"),
        pytest.param([("X-A", b"1")], id="value-bytes"),
        pytest.param([("X-A", 1)], id="value-int"),
        pytest.param([(None, "1")], id="name-None"),
        # RFC 9110 section 5.1: a field name is a token.
        pytest.param([("X Y", "1")], id="name-space"),
        pytest.param([("X:Y", "1")], id="name-colon"),
        pytest.param([("", "1")], id="name-empty"),
        pytest.param([("X-A\r\nX-B", "1")], id="name-crlf"),
        pytest.param([("X-\xc4", "1")], id="name-non-ascii"),
        pytest.param([("X(Y)", "1")], id="name-paren"),
        # Header injection: CR, LF and NUL are never valid in a value (RFC 9110 section 5.5).
        pytest.param([("X-A", "1\r\nSet-Cookie: admin=1")], id="value-crlf"),
        pytest.param([("X-A", "1\nX-B: 2")], id="value-lf"),
        pytest.param([("X-A", "1\rX-B: 2")], id="value-cr"),
        pytest.param([("X-A", "1\x00")], id="value-nul"),
        # PEP 3333: values must be latin-1; the app has to encode anything else itself.
        pytest.param([("X-A", "\u20ac")], id="value-euro"),
        pytest.param([("X-A", "caf\xe9 \u2713")], id="value-check-mark"),
        pytest.param([("X-A", "\U0001f600")], id="value-emoji"),
        # One bad header spoils the list, wherever it is.
        pytest.param([("X-A", "1"), ("X-B", "2\n")], id="second-bad"),
    ],
)
def test_encode_response_headers_rejects(headers: object) -> None:
    with pytest.raises(AppProtocolError) as info:
        encode_response_headers(headers)
    assert info.value.status_code == 500


@pytest.mark.parametrize(
    "headers",
    [
        # PEP 3333 asks for a list of tuples, and wsgiref.validate insists on it. gunicorn
        # accepts any sequence of pairs, and a legacy app that works there must keep working
        # when it moves behind crossgate, so these shapes are accepted on purpose.
        pytest.param((("Content-Type", "text/plain"),), id="tuple-of-tuples"),
        pytest.param([["Content-Type", "text/plain"]], id="list-of-lists"),
    ],
)
def test_encode_response_headers_accepts_other_sequences_of_pairs(headers: object) -> None:
    assert encode_response_headers(headers) == [(b"content-type", b"text/plain")]


# --- ResponseState -----------------------------------------------------------------------------


def _exc_info(exc: BaseException) -> OptExcInfo:
    """A real ``sys.exc_info()`` triple, traceback included, as a WSGI app would pass it."""
    try:
        raise exc
    except BaseException:
        return sys.exc_info()


def test_fresh_state() -> None:
    state = ResponseState()
    assert state.status is None
    assert state.headers == []
    assert state.content_length is None
    assert state.committed is False
    assert state.sent == 0
    assert state.shortfall() == 0


def test_start_then_commit() -> None:
    state = ResponseState()
    state.start("201 Created", [("Content-Type", "text/plain"), ("X-A", "1")])
    assert state.committed is False
    event = state.commit()
    assert event == {
        "type": "http.response.start",
        "status": 201,
        "headers": [(b"content-type", b"text/plain"), (b"x-a", b"1")],
    }
    assert state.committed is True


def test_commit_without_start_is_an_app_error() -> None:
    # PEP 3333: the app must call start_response before the first body byte (or its return).
    with pytest.raises(AppProtocolError):
        ResponseState().commit()


def test_second_start_without_exc_info_is_an_app_error() -> None:
    state = ResponseState()
    state.start("200 OK", [("X-A", "1")])
    with pytest.raises(AppProtocolError):
        state.start("404 Not Found", [])
    # The first call stands.
    assert state.commit()["status"] == 200
    assert state.headers == [(b"x-a", b"1")]


def test_start_with_exc_info_before_commit_replaces_the_response() -> None:
    # PEP 3333, "Error Handling": until headers are sent, start_response(..., exc_info) may
    # replace the status and headers -- all of them, Content-Length included.
    state = ResponseState()
    state.start("200 OK", [("Content-Type", "text/html"), ("Content-Length", "100")])
    state.start(
        "500 Internal Server Error", [("Content-Type", "text/plain")], _exc_info(KeyError())
    )
    assert state.status == 500
    assert state.headers == [(b"content-type", b"text/plain")]
    assert state.content_length is None
    assert state.commit()["status"] == 500


def test_start_with_exc_info_as_first_call() -> None:
    state = ResponseState()
    state.start("503 Service Unavailable", [], _exc_info(RuntimeError("down")))
    assert state.commit()["status"] == 503


@pytest.mark.parametrize("committed", [False, True])
def test_empty_exc_info_counts_as_none(committed: bool) -> None:
    # sys.exc_info() outside an except block is (None, None, None): no error to report, so
    # a second call is still the PEP 3333 error, not a replacement or a re-raise.
    state = ResponseState()
    state.start("200 OK", [], (None, None, None))
    if committed:
        state.commit()
    with pytest.raises(AppProtocolError):
        state.start("500 Internal Server Error", [], (None, None, None))
    assert state.status == 200


def test_start_with_exc_info_after_commit_reraises() -> None:
    # PEP 3333: "if exc_info is provided, and the HTTP headers have already been sent,
    # start_response must raise an error, and should re-raise using the exc_info tuple."
    state = ResponseState()
    state.start("200 OK", [])
    state.commit()
    original = ValueError("boom")
    info = _exc_info(original)
    with pytest.raises(ValueError, match="boom") as raised:
        state.start("500 Internal Server Error", [], info)
    assert raised.value is original
    assert raised.value.__traceback__ is not None
    # The response that went out is not changed after the fact.
    assert state.status == 200


@pytest.mark.parametrize(
    ("status", "headers"),
    [("200", []), (200, []), ("200 OK", [("X-A", "1\r\n")]), ("200 OK", None)],
)
def test_invalid_start_leaves_the_state_unchanged(status: object, headers: object) -> None:
    state = ResponseState()
    with pytest.raises(AppProtocolError):
        state.start(status, headers)
    assert state.status is None
    # So a later, valid call is still a first call.
    state.start("200 OK", [])
    assert state.status == 200


@pytest.mark.parametrize(
    ("headers", "content_length"),
    [
        ([], None),
        ([("Content-Type", "text/plain")], None),
        ([("Content-Length", "0")], 0),
        ([("Content-Length", "5")], 5),
        ([("content-length", "5")], 5),
        ([("CONTENT-LENGTH", "123456789012")], 123456789012),
        # The same value twice is redundant, not contradictory.
        ([("Content-Length", "5"), ("Content-Length", "5")], 5),
        # Whitespace around a value is not part of it (RFC 9110 section 5.5).
        ([("Content-Length", " 5\t")], 5),
    ],
)
def test_content_length_is_parsed(headers: list[tuple[str, str]], content_length: int) -> None:
    state = ResponseState()
    state.start("200 OK", headers)
    assert state.content_length == content_length


@pytest.mark.parametrize(
    "headers",
    [
        [("Content-Length", "abc")],
        [("Content-Length", "")],
        [("Content-Length", "-1")],
        [("Content-Length", "+5")],
        [("Content-Length", "1.5")],
        [("Content-Length", "5, 5")],
        [("Content-Length", "\xb2")],
        [("Content-Length", "5"), ("Content-Length", "6")],
    ],
)
def test_invalid_content_length_is_an_app_error(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(AppProtocolError):
        ResponseState().start("200 OK", headers)


@pytest.mark.parametrize(
    ("content_length", "chunks", "results"),
    [
        # No Content-Length: everything goes out, and only the end of the iterable ends it.
        (None, [b"abc", b"", b"de"], [(b"abc", 0, False), (b"", 0, False), (b"de", 0, False)]),
        # Content-Length is a promise (PEP 3333, "Handling the Content-Length Header"): the
        # server must not send more, so the surplus is dropped and the body is complete.
        (5, [b"abc", b"de"], [(b"abc", 0, False), (b"de", 0, True)]),
        (5, [b"abc", b"defg", b"h"], [(b"abc", 0, False), (b"de", 2, True), (b"", 1, True)]),
        (3, [b"abcdef"], [(b"abc", 3, True)]),
        (3, [b"", b"abc"], [(b"", 0, False), (b"abc", 0, True)]),
        (0, [b""], [(b"", 0, True)]),
        (0, [b"x"], [(b"", 1, True)]),
    ],
)
def test_clamp(
    content_length: int | None,
    chunks: list[bytes],
    results: list[tuple[bytes, int, bool]],
) -> None:
    state = ResponseState()
    headers = [] if content_length is None else [("Content-Length", str(content_length))]
    state.start("200 OK", headers)
    state.commit()
    assert [state.clamp(chunk) for chunk in chunks] == results
    assert state.sent == sum(len(sent) for sent, _, _ in results)


@pytest.mark.parametrize(
    ("content_length", "chunks", "shortfall"),
    [
        (None, [b"abc"], 0),
        (5, [], 5),
        (5, [b"abc"], 2),
        (5, [b"abcde"], 0),
        (5, [b"abcdefgh"], 0),
        (0, [], 0),
    ],
)
def test_shortfall(content_length: int | None, chunks: list[bytes], shortfall: int) -> None:
    state = ResponseState()
    headers = [] if content_length is None else [("Content-Length", str(content_length))]
    state.start("200 OK", headers)
    for chunk in chunks:
        state.clamp(chunk)
    assert state.shortfall() == shortfall


@pytest.mark.parametrize(
    ("method", "status", "owed"),
    [
        ("GET", "200 OK", 10),
        ("HEAD", "200 OK", 0),
        ("GET", "204 No Content", 0),
        ("GET", "304 Not Modified", 0),
    ],
)
def test_bodiless_answers_owe_nothing(method: str, status: str, owed: int) -> None:
    # RFC 9110 sections 8.6, 9.3.2, 15.4.5: they carry the Content-Length of a body not sent.
    state = ResponseState(method)
    state.start(status, [("Content-Length", "10")])
    assert state.shortfall() == owed


# --- error_events ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status_code", "message", "body"),
    [
        (500, None, b"500 Internal Server Error\n"),
        (400, None, b"400 Bad Request\n"),
        (431, "too many headers", b"431 Request Header Fields Too Large: too many headers\n"),
        (404, "no route for /x", b"404 Not Found: no route for /x\n"),
        (400, "caf\xe9", "400 Bad Request: caf\xe9\n".encode()),
    ],
)
def test_error_events(status_code: int, message: str | None, body: bytes) -> None:
    start, body_event = error_events(status_code, message)
    assert start["type"] == "http.response.start"
    assert start["status"] == status_code
    assert list(start.get("headers", ())) == [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    assert body_event == {"type": "http.response.body", "body": body, "more_body": False}


def test_error_events_extra_headers_come_last() -> None:
    extra = ((b"connection", b"close"), (b"retry-after", b"5"))
    start, body_event = error_events(503, extra_headers=extra)
    headers = list(start.get("headers", ()))
    assert headers[-2:] == list(extra)
    assert (b"content-length", str(len(body_event["body"])).encode()) in headers


@pytest.mark.parametrize("status_code", [400, 413, 431, 500, 502, 503])
def test_error_events_are_a_complete_conformant_response(status_code: int) -> None:
    checker = HTTPConformanceChecker()
    for event in error_events(status_code, "why"):
        checker.check(event)
    assert checker.complete


# --- file_send_event ---------------------------------------------------------------------------

PATHSEND_EXT: dict[str, dict[object, object]] = {"http.response.pathsend": {}}
ZEROCOPY_EXT: dict[str, dict[object, object]] = {"http.response.zerocopysend": {}}
BOTH_EXT = {**PATHSEND_EXT, **ZEROCOPY_EXT}


@pytest.mark.parametrize(
    ("extensions", "path", "offset", "length_header", "expected"),
    [
        # Path Send sends a whole file by name: only from offset 0, only with a checked path.
        pytest.param(PATHSEND_EXT, "/srv/f", 0, None, "pathsend", id="pathsend"),
        pytest.param(PATHSEND_EXT, "/srv/f", 10, None, None, id="pathsend-needs-offset-0"),
        pytest.param(PATHSEND_EXT, None, 0, None, None, id="pathsend-needs-a-path"),
        # Zero Copy Send takes the open file and an offset.
        pytest.param(ZEROCOPY_EXT, None, 10, None, "zerocopysend", id="zerocopy-offset"),
        pytest.param(BOTH_EXT, "/srv/f", 10, None, "zerocopysend", id="both-prefers-fitting"),
        pytest.param(BOTH_EXT, "/srv/f", 0, None, "pathsend", id="both-pathsend-first"),
        # A Content-Length that does not match what remains: iterate and let the clamp act.
        pytest.param(BOTH_EXT, "/srv/f", 0, "5", None, id="length-mismatch"),
        pytest.param(BOTH_EXT, "/srv/f", 0, "100", "pathsend", id="length-matches"),
        pytest.param({}, "/srv/f", 0, None, None, id="no-extension"),
    ],
)
def test_file_send_event(
    extensions: dict[str, dict[object, object]],
    path: str | None,
    offset: int,
    length_header: str | None,
    expected: str | None,
) -> None:
    state = ResponseState()
    headers = [("Content-Type", "text/csv")]
    if length_header is not None:
        headers.append(("Content-Length", length_header))
    state.start("200 OK", headers)
    file = object()
    event = file_send_event(state, extensions, file=file, path=path, offset=offset, size=100)
    if expected is None:
        assert event is None
        assert state.sent == 0
        return
    assert event is not None
    assert event["type"] == f"http.response.{expected}"
    assert state.content_length == 100 - offset
    assert (b"content-length", str(100 - offset).encode()) in state.headers
    assert state.sent == 100 - offset, "the body counts as fully sent"
    if event["type"] == "http.response.zerocopysend":
        assert (event["file"], event["offset"], event["count"]) == (file, offset, 100 - offset)
        assert event["more_body"] is False
    else:
        assert event["type"] == "http.response.pathsend"
        assert event["path"] == path


def test_file_send_event_needs_start_and_no_body_yet() -> None:
    state = ResponseState()
    assert file_send_event(state, BOTH_EXT, file=object(), path="/f", offset=0, size=1) is None
    state.start("200 OK", [])
    state.commit()
    assert file_send_event(state, BOTH_EXT, file=object(), path="/f", offset=0, size=1) is None


def test_head_never_sends_a_file() -> None:
    state = ResponseState("HEAD")
    state.start("200 OK", [])
    assert file_send_event(state, BOTH_EXT, file=object(), path="/f", offset=0, size=1) is None


def test_content_length_too_long_for_int_is_an_app_error() -> None:
    # Issue 19: int() of more than 4300 digits raises ValueError; the shared rule refuses it.
    state = ResponseState()
    with pytest.raises(AppProtocolError, match="Content-Length"):
        state.start("200 OK", [("Content-Length", "9" * 5000)])


def test_encoded_response_headers_are_cached_within_a_bound() -> None:
    from crossgate.sansio import headers as headers_module

    bound = headers_module._ENCODED_MAX
    for number in range(bound + 50):  # a Content-Length per response: every pair is new
        encoded = encode_response_headers([("Content-Length", str(number))])
        assert encoded == [(b"content-length", str(number).encode())]
        assert len(headers_module._ENCODED) <= bound
    # A cached pair is the same answer as a fresh one; a list item is checked, never cached.
    assert encode_response_headers([("X-A", " 1 ")]) == encode_response_headers([("X-A", " 1 ")])
    assert encode_response_headers([["X-B", "2"]]) == [(b"x-b", b"2")]
    assert ("X-B", "2") not in headers_module._ENCODED
    with pytest.raises(AppProtocolError):
        encode_response_headers([("X-A", " 1 \n")])
