"""Strategies and checks shared by the fuzz properties (``tests/test_fuzz_*.py``, issue 19).

Each property drives random requests and random applications through the middleware stack or an
adapter and checks what reaches the server: a correct response or one of crossgate's own
exceptions, never another exception, a hang, CR/LF/NUL in a header, or a body longer than its
``Content-Length`` (or, once complete, shorter: a HEAD answer, a 204 and a 304 excepted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hypothesis import settings
from hypothesis import strategies as st

__all__ = [
    "FUZZ",
    "as_pairs",
    "body_chunks",
    "check_framing",
    "check_header_pairs",
    "clients",
    "request_headers",
    "response_headers",
    "statuses",
]

# Bounded: every property here together stays within a few seconds to tens of seconds on a
# loaded machine (hypothesis' own deadline is off: a shared CPU makes its timing meaningless).
FUZZ = settings(max_examples=250, deadline=None)

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN = re.compile(rb"[\r\n\x00]")

# Addresses the stack's ProxyHeaders trusts (loopback, 10/8) and some it does not, in the
# shapes servers and proxies write them.
clients = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(
            ["127.0.0.1", "::1", "10.0.0.5", "203.0.113.9", "::ffff:127.0.0.1", "", "unix"]
        ),
        st.integers(min_value=0, max_value=65535),
    ),
)

# Values chosen to reach the interesting branches of every middleware, plus arbitrary bytes.
_HEADER_VALUES: dict[bytes, list[bytes]] = {
    b"host": [
        b"example.com",
        b"www.example.com",
        b"evil.com",
        b"example.com:8443",
        b"[::1]",
        b"a@b",
        b"example.com, evil.com",
        b"",
    ],
    b"origin": [
        b"https://example.com",
        b"null",
        b"https://evil.com",
        b"http://example.com",
        b"https://example.com/x",
        b"",
    ],
    b"x-forwarded-for": [
        b"203.0.113.7",
        b"::ffff:1.2.3.4",
        b"1.2.3.4, 5.6.7.8",
        b"unknown",
        b"_hidden",
        b"[2001:db8::1]:80",
        b"evil.com",
        b"1.2.3.4\r\n",
    ],
    b"x-forwarded-proto": [b"https", b"http", b"wss", b"ftp", b""],
    b"x-forwarded-host": [b"example.com", b"evil.com", b"a:b:c", b"example.com:444"],
    b"x-forwarded-port": [b"443", b"0", b"99999", b"x"],
    b"x-forwarded-prefix": [
        b"/app",
        b"/%09/evil.com",
        b"/%5Cevil.com",
        b"//evil.com",
        b"/a%2F",
        b"/caf%C3%A9",
        b"/%FF",
        b"/",
    ],
    b"forwarded": [
        b"for=1.2.3.4;proto=https;host=example.com",
        b'for="[::ffff:1.2.3.4]"',
        b"for=evil.com",
        b"for",
        b'host="a@b"',
    ],
    b"accept-encoding": [b"gzip", b"br, gzip", b"gzip;q=0", b"*", b"identity;q=1, gzip;q=0.5"],
    b"content-length": [b"0", b"5", b"-1", b"99999999999", b"9" * 5000, b" 5", b"x"],
    b"x-request-id": [b"abc-123", b"abc\r\nSet-Cookie: x", b"a" * 300, b""],
    b"cookie": [b"a=1", b"b=2"],
}
_names = st.one_of(
    st.sampled_from(sorted(_HEADER_VALUES)),
    st.binary(min_size=0, max_size=8),  # anything, tokens or not (h11 would refuse most)
)


@st.composite
def _request_header(draw: st.DrawFn) -> tuple[bytes, bytes]:
    name = draw(_names)
    known = _HEADER_VALUES.get(name)
    if known is not None and draw(st.booleans()):
        return name, draw(st.sampled_from(known))
    return name, draw(st.binary(max_size=24))


request_headers = st.lists(_request_header(), max_size=10)

statuses = st.one_of(
    st.sampled_from([200, 204, 206, 301, 304, 400, 404, 500, 599]),
    st.integers(min_value=-5, max_value=700),
)

_RESPONSE_NAMES = [
    b"content-length",
    b"Content-Length",
    b"content-type",
    b"content-encoding",
    b"content-range",
    b"accept-ranges",
    b"etag",
    b"vary",
    b"set-cookie",
    b"transfer-encoding",
    b"connection",
    b"x-request-id",
    b"x-a",
]
_RESPONSE_VALUES = [
    b"0",
    b"1",
    b"5",
    b"20",
    b"-1",
    b"1e3",
    b"",
    b" 5",
    b"9" * 5000,
    b"text/plain",
    b"gzip",
    b"bytes",
    b'"v1"',
    b"Cookie",
    b"a=1; Path=/",
    b"chunked",
    b"close",
    b"a\r\nb",
    b"\x00",
    b"caf\xe9",
]

response_headers = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(_RESPONSE_NAMES), st.binary(max_size=6)),
        st.one_of(st.sampled_from(_RESPONSE_VALUES), st.binary(max_size=12)),
    ),
    max_size=6,
)

body_chunks = st.lists(
    st.one_of(st.binary(max_size=40), st.just(b"The quick brown fox. " * 40)), max_size=4
)


def check_header_pairs(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Every header reaching the server: a token name, and no CR, LF or NUL anywhere."""
    for name, value in headers:
        assert _TOKEN.fullmatch(name), name
        assert not _FORBIDDEN.search(value), (name, value)


def check_framing(
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
    *,
    status: int,
    head: bool,
    complete: bool,
) -> None:
    """The body never breaks the response's one Content-Length (none: nothing to check)."""
    lengths = {value for name, value in headers if name.lower() == b"content-length"}
    if not lengths:
        return
    assert len(lengths) == 1, lengths  # two different lengths never reach the server
    (text,) = lengths
    assert text.isdigit(), text
    declared = int(text)
    assert len(body) <= declared, (len(body), declared)
    if complete and not head and status not in (204, 304):
        assert len(body) == declared, (len(body), declared)


def as_pairs(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """WSGI ``(str, str)`` headers as the bytes a server writes (latin-1, PEP 3333)."""
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
