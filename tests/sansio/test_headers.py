"""Request headers -> environ entries (``crossgate.sansio.headers.environ_headers``), table-driven.

The response direction (``encode_response_headers``) is tested in ``test_response.py`` with the
rest of ``start_response``.
"""

from __future__ import annotations

import pytest

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio.headers import DEFAULT_MAX_HEADERS, environ_headers, header_environ_key

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
