"""The ``Origin`` decision (`crossgate.sansio.origin_check`), as tables."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio.origin_check import (
    Origin,
    OriginDecision,
    OriginPattern,
    OriginPolicy,
    parse_origin,
)


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://example.com", Origin("https", "example.com", 443)),
        ("https://example.com:443", Origin("https", "example.com", 443)),
        ("HTTPS://Example.COM", Origin("https", "example.com", 443)),
        ("http://example.com", Origin("http", "example.com", 80)),
        ("http://localhost:3000", Origin("http", "localhost", 3000)),
        ("http://[::1]:8000", Origin("http", "[::1]", 8000)),
        ("chrome-extension://abcdef", Origin("chrome-extension", "abcdef", None)),
    ],
)
def test_parse_origin(value: str, origin: Origin) -> None:
    assert parse_origin(value) == origin


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://example.com/", "no path"),  # an origin has no path, not even "/"
        ("https://example.com/app", "no path"),
        ("https://example.com?x", "no path"),
        ("https://example.com#x", "no path"),
        ("example.com", "not an origin"),
        ("://example.com", "not an origin"),
        ("1http://example.com", "not an origin"),
        ("https://user@example.com", "not a valid host"),
        ("https://evil.com:80@good.com", "not a valid host"),
        ("https://", "empty host"),
        ("https://example.com:0", "bad port"),
        ("https://example.com\r\n", "not a valid host"),
    ],
)
def test_parse_origin_refuses(value: str, message: str) -> None:
    with pytest.raises(PeerProtocolError, match=message):
        parse_origin(value)


@pytest.mark.parametrize(
    ("pattern", "origin", "allowed"),
    [
        ("https://example.com", "https://example.com", True),
        ("https://example.com", "https://example.com:443", True),
        ("https://example.com", "http://example.com", False),  # another scheme
        ("https://example.com", "https://example.com:8443", False),  # another port
        ("https://example.com", "https://www.example.com", False),
        ("https://example.com:8443", "https://example.com:8443", True),
        ("https://example.com:8443", "https://example.com", False),
        ("http://localhost:*", "http://localhost:3000", True),
        ("http://localhost:*", "http://localhost", True),
        ("http://localhost:*", "https://localhost:3000", False),
        ("https://*.example.com", "https://a.example.com", True),
        ("https://*.example.com", "https://a.b.example.com", True),
        ("https://*.example.com", "https://example.com", False),
        ("https://*.example.com", "https://evilexample.com", False),
        ("https://*.example.com", "http://a.example.com", False),
        ("https://*.example.com", "https://a.example.com:8443", False),
        ("https://*.1", "https://10.0.0.1", False),  # a wildcard never matches an address
        ("http://[::1]:8000", "http://[0::1]:8000", True),
    ],
)
def test_origin_pattern(pattern: str, origin: str, allowed: bool) -> None:
    assert OriginPattern.parse(pattern).matches(parse_origin(origin)) is allowed


def test_null_pattern_matches_no_parsed_origin() -> None:
    assert not OriginPattern.parse("null").matches(parse_origin("https://example.com"))


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("example.com", "invalid allowed origin"),
        ("https://example.com/", "invalid allowed origin"),
        ("*", "invalid allowed origin"),
        ("https://*.[::1]", "wildcard needs a domain name"),
        ("https://*.10.0.0.1", "wildcard needs a domain name"),
    ],
)
def test_origin_pattern_errors(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OriginPattern.parse(pattern)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: OriginPolicy("https://example.com"), "must be a list"),
        (lambda: OriginPolicy([], protocols="http"), "must be a list"),
        (lambda: OriginPolicy([], protocols=()), "protocols must be"),
        (lambda: OriginPolicy([], protocols=("websocket", "ftp")), "protocols must be"),
    ],
)
def test_origin_policy_errors(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


POLICY = OriginPolicy(["https://example.com", "https://*.example.org", "http://localhost:*"])
REFUSED_NULL = OriginDecision(False, "Origin null is not allowed")


@pytest.mark.parametrize(
    ("origin", "decision"),
    [
        ("https://example.com", OriginDecision(True)),
        ("https://a.example.org", OriginDecision(True)),
        ("http://localhost:5173", OriginDecision(True)),
        (None, OriginDecision(False, "missing Origin header")),
        ("null", REFUSED_NULL),
        ("https://evil.com", OriginDecision(False, "origin 'https://evil.com' is not allowed")),
        (
            "https://example.com/",
            OriginDecision(
                False,
                "invalid Origin header: an origin has no "
                "path, query or fragment: "
                "'https://example.com/'",
            ),
        ),
        ("http://example.com", OriginDecision(False, "origin 'http://example.com' is not allowed")),
        (
            "https://example.com:8443",
            OriginDecision(False, "origin 'https://example.com:8443' is not allowed"),
        ),
        (
            "https://example.com,https://evil.com",
            OriginDecision(False, "more than one Origin header"),
        ),
        (
            "https://evil.com\r\n",
            OriginDecision(False, "invalid Origin header: not a valid host: 'evil.com\\r\\n'"),
        ),
    ],
)
def test_origin_policy_check(origin: str | None, decision: OriginDecision) -> None:
    assert POLICY.check(origin, scheme="https", host="app.internal") == decision


def test_allow_missing() -> None:
    policy = OriginPolicy(["https://example.com"], allow_missing=True)
    assert policy.check(None, scheme="https", host="example.com").allowed
    assert not policy.check("null", scheme="https", host="example.com").allowed


def test_null_only_when_listed() -> None:
    policy = OriginPolicy(["null"])
    assert policy.check("null", scheme="https", host="example.com").allowed
    assert not policy.check("https://example.com:1", scheme="https", host="x.com").allowed


@pytest.mark.parametrize(
    ("origin", "scheme", "host", "allowed"),
    [
        ("https://app.example.net", "https", "app.example.net", True),
        ("https://app.example.net", "https", "APP.example.net.", True),
        ("https://app.example.net", "wss", "app.example.net", True),  # the page's scheme
        ("http://app.example.net", "ws", "app.example.net:80", True),
        ("https://app.example.net", "https", "app.example.net:443", True),
        ("https://app.example.net:8443", "wss", "app.example.net:8443", True),
        ("http://app.example.net", "https", "app.example.net", False),  # another scheme
        ("https://app.example.net", "https", "app.example.net:8443", False),  # another port
        ("https://evil.net", "https", "app.example.net", False),
        ("https://app.example.net", "https", "bad host", False),
    ],
)
def test_same_origin(origin: str, scheme: str, host: str, allowed: bool) -> None:
    policy = OriginPolicy([])
    assert policy.check(origin, scheme=scheme, host=host).allowed is allowed
    strict = OriginPolicy([], allow_same_origin=False)
    assert not strict.check(origin, scheme=scheme, host=host).allowed


def test_same_origin_needs_a_host() -> None:
    assert not OriginPolicy([]).check("https://a.com", scheme="https", host=None).allowed


@pytest.mark.parametrize(
    ("protocols", "scope_type", "method", "checked"),
    [
        (("websocket",), "websocket", "GET", True),
        (("websocket",), "http", "POST", False),
        (("websocket",), "lifespan", "GET", False),
        (("http",), "websocket", "GET", False),
        (("http",), "http", "POST", True),
        (("http",), "http", "PUT", True),
        (("http",), "http", "PATCH", True),
        (("http",), "http", "DELETE", True),
        (("http",), "http", "PROPFIND", True),
        (("http",), "http", "GET", False),  # safe methods (RFC 9110 section 9.2.1)
        (("http",), "http", "HEAD", False),
        (("http",), "http", "OPTIONS", False),
        (("http",), "http", "TRACE", False),
        (("http", "websocket"), "websocket", "GET", True),
        (("http", "websocket"), "lifespan", "GET", False),
    ],
)
def test_applies(protocols: tuple[str, ...], scope_type: str, method: str, checked: bool) -> None:
    assert OriginPolicy([], protocols=protocols).applies(scope_type, method) is checked


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.text(max_size=20) | st.none(),
)
@example("https://example.com", "example.com")
@example("null", None)
@example("https://[::1", "[")
def test_origin_check_never_raises(origin: str, host: str | None) -> None:
    decision = POLICY.check(origin, scheme="https", host=host)
    assert isinstance(decision, OriginDecision)
    if decision.allowed:
        # Only a clean origin gets through: no header break, no path, no user, no second one.
        assert not any(c in origin.partition("://")[2] for c in "\r\n\x00/@, ")


def test_decisions_are_remembered_in_a_bounded_cache() -> None:
    policy = OriginPolicy(["https://example.com"])
    first = policy.check("https://example.com", scheme="https", host="x")
    assert policy.check("https://example.com", scheme="https", host="x") is first
    for i in range(1500):  # a client sending random origins
        assert not policy.check(f"https://h{i}.evil", scheme="https", host="x").allowed
    assert policy._remembered.cache_info().currsize <= 1024
    assert policy.check("https://example.com", scheme="https", host="x") == first


def test_long_values_are_not_remembered() -> None:
    policy = OriginPolicy(["https://example.com"])
    assert not policy.check("https://" + "a" * 5000, scheme="https", host=None).allowed
    assert not policy.check("https://a.com", scheme="https", host="h" * 5000).allowed
    assert policy._remembered.cache_info().currsize == 0


def test_memo_keys_on_every_input() -> None:
    policy = OriginPolicy([])
    assert policy.check("https://a.com", scheme="https", host="a.com").allowed
    assert not policy.check("https://a.com", scheme="http", host="a.com").allowed
    assert not policy.check("https://a.com", scheme="https", host="b.com").allowed
