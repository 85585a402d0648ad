"""Request headers -> environ entries (``crossgate.sansio.headers.environ_headers``), table-driven.

The response direction (``encode_response_headers``) is tested in ``test_response.py`` with the
rest of ``start_response``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossgate.exceptions import AppProtocolError, PeerProtocolError
from crossgate.sansio.headers import (
    DEFAULT_MAX_HEADERS,
    check_header_count,
    collect_headers,
    environ_headers,
    header_environ_key,
    parse_content_length,
    single_header,
)

Headers = list[tuple[bytes, bytes]]


@pytest.mark.parametrize(
    ("name", "key"),
    [
        # PEP 3333 / CGI (RFC 3875 section 4.1.2-3): no HTTP_ prefix for these two.
        (b"content-type", "CONTENT_TYPE"),
        (b"content-length", "CONTENT_LENGTH"),
        # RFC 3875 section 4.1.18: "HTTP_" + upper case, "-" replaced by "_".
        (b"host", "HTTP_HOST"),
        (b"x-forwarded-for", "HTTP_X_FORWARDED_FOR"),
        (b"accept-encoding", "HTTP_ACCEPT_ENCODING"),
        (b"x-under", "HTTP_X_UNDER"),
        (b"x_under", "HTTP_X_UNDER"),
    ],
)
def test_header_environ_key(name: bytes, key: str) -> None:
    assert header_environ_key(name) == key


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], {}),
        ([(b"host", b"example.com")], {"HTTP_HOST": "example.com"}),
        # Values are bytes on the wire and latin-1 strings in the environ (PEP 3333).
        ([(b"x-a", b"caf\xe9")], {"HTTP_X_A": "caf\xe9"}),
        ([(b"x-a", b"caf\xc3\xa9")], {"HTTP_X_A": "caf\xc3\xa9"}),
        ([(b"x-a", b"")], {"HTTP_X_A": ""}),
        (
            [(b"content-type", b"text/plain"), (b"content-length", b"12")],
            {"CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "12"},
        ),
    ],
)
def test_headers_translate(headers: Headers, expected: dict[str, str]) -> None:
    assert environ_headers(headers) == expected


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-under", b"real"), (b"x_under", b"spoofed")],
        [(b"x_under", b"spoofed"), (b"x-under", b"real")],
    ],
)
def test_underscore_headers_are_dropped(headers: Headers) -> None:
    # X-Under and X_Under both map to HTTP_X_UNDER; a client must not be able to forge (or
    # join onto) a header a trusted proxy sets. nginx, gunicorn 22+ and Django drop them too.
    assert environ_headers(headers) == {"HTTP_X_UNDER": "real"}


def test_underscore_only_headers_are_dropped() -> None:
    assert environ_headers([(b"x_under", b"spoofed"), (b"content_type", b"x")]) == {}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"x_under", b"v")], {"HTTP_X_UNDER": "v"}),
        ([(b"x-under", b"a"), (b"x_under", b"b")], {"HTTP_X_UNDER": "a, b"}),
        # Even when kept, these two must not become HTTP_CONTENT_TYPE / HTTP_CONTENT_LENGTH:
        # PEP 3333 has CONTENT_TYPE / CONTENT_LENGTH, and wsgiref.validate rejects an environ
        # with the HTTP_ forms beside them.
        ([(b"content_type", b"text/evil")], {}),
        ([(b"content_length", b"5")], {}),
        (
            [(b"content-type", b"text/plain"), (b"content_type", b"text/evil")],
            {"CONTENT_TYPE": "text/plain"},
        ),
    ],
)
def test_underscore_headers_kept_on_request(headers: Headers, expected: dict[str, str]) -> None:
    assert environ_headers(headers, keep_underscores=True) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # RFC 9110 section 5.3: repeated field lines combine with ", ".
        ([(b"accept", b"a"), (b"accept", b"b")], {"HTTP_ACCEPT": "a, b"}),
        (
            [(b"accept", b"a"), (b"x-other", b"o"), (b"accept", b"b"), (b"accept", b"c")],
            {"HTTP_ACCEPT": "a, b, c", "HTTP_X_OTHER": "o"},
        ),
        # Cookie is the exception: RFC 9113 section 8.2.3 / RFC 6265 section 5.4 use "; ".
        ([(b"cookie", b"a=1"), (b"cookie", b"b=2")], {"HTTP_COOKIE": "a=1; b=2"}),
        (
            [(b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"cookie", b"c=3")],
            {"HTTP_COOKIE": "a=1; b=2; c=3"},
        ),
        # Order of the values is the order of the lines.
        ([(b"x-a", b"2"), (b"x-a", b"1")], {"HTTP_X_A": "2, 1"}),
    ],
)
def test_repeated_headers_are_joined(headers: Headers, expected: dict[str, str]) -> None:
    assert environ_headers(headers) == expected


@pytest.mark.timeout(5)
@pytest.mark.parametrize(("name", "separator"), [(b"x-dup", ", "), (b"cookie", "; ")])
def test_joining_many_repeated_headers_is_linear(name: bytes, separator: str) -> None:
    # A quadratic join (value = value + ", " + next) of 32,000 100-byte values copies tens of
    # gigabytes and would hit the timeout; a linear one finishes in milliseconds. No timing is
    # asserted: the timeout mark is the guard.
    count, value = 32_000, b"v" * 100
    result = environ_headers([(name, value)] * count, max_headers=None)
    joined = next(iter(result.values()))
    assert len(joined) == count * len(value) + (count - 1) * len(separator)
    assert joined.count(separator) == count - 1


@pytest.mark.parametrize(
    ("max_headers", "count", "rejected"),
    [
        (DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEADERS, False),
        (DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEADERS + 1, True),
        (3, 3, False),
        (3, 4, True),
        (0, 0, False),
        (0, 1, True),
        (None, 5000, False),
    ],
)
def test_max_headers(max_headers: int | None, count: int, rejected: bool) -> None:
    headers = [(b"x-h%d" % i, b"v") for i in range(count)]
    if rejected:
        with pytest.raises(PeerProtocolError) as info:
            environ_headers(headers, max_headers=max_headers)
        # RFC 6585 section 5: 431 Request Header Fields Too Large.
        assert info.value.status_code == 431
    else:
        assert len(environ_headers(headers, max_headers=max_headers)) == count


def test_dropped_headers_still_count_towards_max_headers() -> None:
    # Otherwise a client could send unlimited underscore headers for free.
    with pytest.raises(PeerProtocolError) as info:
        environ_headers([(b"x_h", b"v")] * 4, max_headers=3)
    assert info.value.status_code == 431


def test_default_max_headers_is_used() -> None:
    with pytest.raises(PeerProtocolError):
        environ_headers([(b"x-h", b"v")] * (DEFAULT_MAX_HEADERS + 1))


@pytest.mark.parametrize(
    "values",
    [
        # RFC 9110 section 8.6 / RFC 9112 section 6.3: conflicting lengths make the framing
        # unknowable, so the request is rejected rather than one of them trusted.
        [b"5", b"6"],
        [b"5", b"5", b"6"],
        [b"0", b"10"],
    ],
)
def test_conflicting_content_length_is_400(values: list[bytes]) -> None:
    with pytest.raises(PeerProtocolError) as info:
        environ_headers([(b"content-length", v) for v in values])
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    "value",
    [b"abc", b"", b"-1", b"+5", b"1.5", b"5, 5", b"0x10", b"1e3", b"\xb2", b"\xb9\xb2"],
)
def test_non_numeric_content_length_is_400(value: bytes) -> None:
    # 1*DIGIT only (RFC 9110 section 8.6). b"\xb2" is latin-1 SUPERSCRIPT TWO, which
    # str.isdigit() accepts but int() and HTTP do not.
    with pytest.raises(PeerProtocolError) as info:
        environ_headers([(b"content-length", value)])
    assert info.value.status_code == 400


@pytest.mark.parametrize("count", [2, 3])
def test_identical_repeated_content_length_is_accepted(count: int) -> None:
    assert environ_headers([(b"content-length", b"42")] * count) == {"CONTENT_LENGTH": "42"}


@pytest.mark.parametrize("value", [b"0", b"42", b"18446744073709551616"])
def test_valid_content_length(value: bytes) -> None:
    assert environ_headers([(b"content-length", value)]) == {"CONTENT_LENGTH": value.decode()}


# --- issue 19, item 4: names outside RFC 9110 tokens -----------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        b"x-forwarded-\xdfl",  # str.upper() folds "\xdf" into "SS": HTTP_X_FORWARDED_SSL
        b"x-\xff",  # str.upper() makes "\u0178", outside latin-1 (PEP 3333 forbids the key)
        b"x-\xb5",  # "\xb5" (micro sign) upper-cases to "\u039c"
        b"x forwarded",
        b"x:y",
        b"",
        b"x\x00y",
        b"x-\xe9t\xe9",
    ],
)
def test_names_that_are_not_tokens_get_no_environ_key(name: bytes) -> None:
    assert header_environ_key(name) is None
    assert environ_headers([(name, b"on"), (b"host", b"example.com")]) == {
        "HTTP_HOST": "example.com"
    }


def test_a_non_ascii_name_never_poses_as_the_ssl_header() -> None:
    # What Django's SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_SSL", "on") would read.
    environ = environ_headers([(b"x-forwarded-\xdfl", b"on")])
    assert "HTTP_X_FORWARDED_SSL" not in environ


@pytest.mark.parametrize("name", [b"X-Mixed-Case", b"x-mixed-case", b"x-MIXED-case"])
def test_ascii_names_upper_case_byte_wise(name: bytes) -> None:
    assert header_environ_key(name) == "HTTP_X_MIXED_CASE"


@given(st.binary(max_size=12))
@settings(max_examples=300, deadline=None)
def test_every_environ_key_is_ascii(name: bytes) -> None:
    # PEP 3333: keys are native strings of latin-1 code points; these are plain ASCII, and
    # exactly the tokens get one.
    key = header_environ_key(name.lower())
    if key is None:
        assert not name or any(c not in _TCHAR for c in name)
    else:
        assert key.isascii()
        assert key == "HTTP_" + name.decode("ascii").upper().replace("-", "_") or key in (
            "CONTENT_TYPE",
            "CONTENT_LENGTH",
        )


_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


# --- the shared rules: Content-Length, header count, repeated lines (issue 19) ---------------


@pytest.mark.parametrize(
    ("values", "length"),
    [
        ([], None),
        ([b"0"], 0),
        ([b"20"], 20),
        ([b"7", b"7"], 7),
        ([b"9" * 64], int("9" * 64)),
    ],
)
def test_parse_content_length(values: list[bytes], length: int | None) -> None:
    assert parse_content_length(values) == length


@pytest.mark.parametrize(
    "values",
    [
        [b"1", b"0"],  # the fuzz minimum of issue 19: conflicting lengths
        [b""],
        [b"-1"],
        [b"+1"],
        [b" 1"],
        [b"1.0"],
        [b"0x10"],
        [b"\xd9\xa5"],  # Arabic-Indic five in UTF-8: str.isdigit() would accept it decoded
        [b"9" * 65],
        [b"9" * 5000],  # int() would raise ValueError (CPython's 4300-digit limit)
    ],
)
def test_parse_content_length_refuses(values: list[bytes]) -> None:
    with pytest.raises(AppProtocolError):
        parse_content_length(values)


def test_check_header_count() -> None:
    check_header_count(DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEADERS)
    check_header_count(10**6, None)
    with pytest.raises(PeerProtocolError) as info:
        check_header_count(DEFAULT_MAX_HEADERS + 1, DEFAULT_MAX_HEADERS)
    assert info.value.status_code == 431


def test_collect_headers_joins_repeated_lines() -> None:
    headers = [(b"a", b"1"), (b"b", b"x"), (b"a", b"2"), (b"c", b"no"), (b"a", b"3")]
    assert collect_headers(headers, [b"a", b"b"]) == {"a": "1,2,3", "b": "x"}
    assert collect_headers(headers, [b"z"]) == {}


def test_single_header_stops_at_the_second_line() -> None:
    def lines() -> Any:
        yield (b"host", b"a")
        yield (b"x", b"y")
        yield (b"host", b"b")
        raise AssertionError("read past the second Host")

    assert single_header(lines(), b"host") == "a,b"
    assert single_header([(b"host", b"\xe9")], b"host") == "\xe9"
    assert single_header([(b"x", b"y")], b"host") is None


def test_environ_content_length_too_long_for_int_is_a_400() -> None:
    with pytest.raises(PeerProtocolError) as info:
        environ_headers([(b"content-length", b"9" * 5000)])
    assert info.value.status_code == 400
