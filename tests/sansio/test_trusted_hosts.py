"""Host parsing and the allowed-hosts decision (`crossgate.sansio.trusted_hosts`), as tables."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio.trusted_hosts import (
    ALLOW,
    Authority,
    HostDecision,
    HostPattern,
    HostPolicy,
    default_port,
    parse_authority,
    parse_port,
    redirect_location,
)


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        ("example.com", "example.com", None),
        ("example.com:8443", "example.com", 8443),
        ("EXAMPLE.Com", "example.com", None),  # case-insensitive (RFC 3986 section 3.2.2)
        ("example.com.", "example.com", None),  # trailing dot: the same name, fully qualified
        ("Example.COM.:80", "example.com", 80),
        ("localhost", "localhost", None),
        ("my_service:8000", "my_service", 8000),  # container names use "_"
        ("127.0.0.1:8000", "127.0.0.1", 8000),
        ("[::1]", "[::1]", None),
        ("[::1]:8000", "[::1]", 8000),
        ("[2001:DB8:0::1]:443", "[2001:db8::1]", 443),  # IPv6 compressed and lower-cased
        ("xn--bcher-kva.example", "xn--bcher-kva.example", None),  # IDN as punycode
        ("a:65535", "a", 65535),
        ("a:1", "a", 1),
    ],
)
def test_parse_authority_accepts(value: str, host: str, port: int | None) -> None:
    assert parse_authority(value) == Authority(host, port)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty host"),
        ("evil.com:80@good.com", "not a valid host (bad port)"),  # userinfo smuggling
        ("user@good.com", "not a valid host"),
        ("good.com@evil.com", "not a valid host"),
        ("a.com,b.com", "not a valid host"),  # two Host headers joined by a WSGI server
        ("a.com b.com", "not a valid host"),
        ("good.com/path", "not a valid host"),
        ("good.com\r\nX-Injected: 1", "not a valid host"),
        ("good.com\x00", "not a valid host"),
        ("bücher.example", "not ASCII"),
        ("example.com:", "bad port"),
        ("example.com:0", "bad port"),
        ("example.com:65536", "bad port"),
        ("example.com:123456", "bad port"),
        ("example.com:+80", "bad port"),
        ("example.com:8 0", "bad port"),
        ("example.com:80:80", "bad port"),
        ("::1", "bad port"),  # an unbracketed IPv6 address
        ("[::1", "unclosed IPv6 literal"),
        ("[::g]", "not a valid IPv6 address"),
        ("[1.2.3.4]", "not a valid IPv6 address"),
        ("[fe80::1%eth0]", "zone identifiers"),
        ("[::1]x", "not a valid host"),
        ("[::1]:", "not a valid port"),
        ("[::1]:99999", "not a valid port"),
        ("-example.com", "not a valid host"),
        ("example-.com", "not a valid host"),
        ("a..b", "not a valid host"),
        (".", "not a valid host"),
        ("a" * 64 + ".com", "not a valid host"),  # a label longer than 63
        (".".join(["a" * 60] * 5), "not a valid host"),  # a name longer than 253
        ("exa%6dple.com", "not a valid host"),  # percent-encoded reg-names are refused
    ],
)
def test_parse_authority_refuses(value: str, message: str) -> None:
    with pytest.raises(PeerProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_authority(value)


def test_parse_authority_message_escapes_the_value() -> None:
    with pytest.raises(PeerProtocolError) as caught:
        parse_authority("a\r\nb")
    assert "\r" not in str(caught.value)
    assert "\\r\\n" in str(caught.value)


@pytest.mark.parametrize(("text", "ok"), [("1", True), ("65535", True), ("0", False), ("", False)])
def test_parse_port(text: str, ok: bool) -> None:
    if ok:
        assert parse_port(text) == int(text)
    else:
        with pytest.raises(PeerProtocolError):
            parse_port(text)


def test_authority_helpers() -> None:
    v6 = Authority("[::1]", 8000)
    assert (v6.name, v6.is_ip, str(v6)) == ("::1", True, "[::1]:8000")
    v4 = Authority("10.0.0.1")
    assert (v4.name, v4.is_ip, str(v4), v4.effective_port("https")) == (
        "10.0.0.1",
        True,
        "10.0.0.1",
        443,
    )
    name = Authority("example.com")
    assert (name.is_ip, name.effective_port("ws"), name.effective_port("gopher")) == (
        False,
        80,
        None,
    )
    assert (default_port("wss"), default_port("ftp")) == (443, None)


@pytest.mark.parametrize(
    ("pattern", "host", "scheme", "allowed"),
    [
        ("example.com", "example.com", "http", True),
        ("example.com", "example.com:8443", "https", True),  # a bare name allows any port
        ("example.com", "EXAMPLE.COM.", "http", True),
        ("example.com", "www.example.com", "http", False),
        ("example.com", "example.com.evil.net", "http", False),
        ("example.com:8443", "example.com:8443", "https", True),
        ("example.com:8443", "example.com:443", "https", False),
        ("example.com:8443", "example.com", "https", False),  # no port: 443
        ("example.com:443", "example.com", "https", True),
        ("example.com:443", "example.com", "http", False),  # no port: 80
        ("*.example.com", "a.example.com", "http", True),
        ("*.example.com", "a.b.example.com", "http", True),
        ("*.example.com", "example.com", "http", False),  # the bare domain is not included
        ("*.example.com", "badexample.com", "http", False),
        ("*.example.com", "a.example.com.evil.net", "http", False),
        ("*.example.com:8443", "a.example.com:8443", "https", True),
        ("*.example.com:8443", "a.example.com", "https", False),
        ("*.1", "10.0.0.1", "http", False),  # a wildcard never matches an IP address
        ("[::1]", "[::1]:8000", "http", True),
        ("[::1]", "[0:0::1]", "http", True),
        ("[::1]:8000", "[::1]:8001", "http", False),
        ("127.0.0.1", "127.0.0.1:8000", "http", True),
        ("*", "anything.example", "http", True),
    ],
)
def test_host_pattern(pattern: str, host: str, scheme: str, allowed: bool) -> None:
    assert HostPattern.parse(pattern).matches(parse_authority(host), scheme) is allowed
    assert HostPolicy([pattern]).allows(parse_authority(host), scheme) is allowed


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("::1", r"brackets: \[::1\]"),
        ("*.[::1]", "wildcard needs a domain name"),
        ("*.10.0.0.1", "wildcard needs a domain name"),
        ("exa mple.com", "invalid allowed host"),
        ("example.com:0", "invalid allowed host"),
        ("", "invalid allowed host"),
        ("**.example.com", "invalid allowed host"),
    ],
)
def test_host_pattern_errors(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HostPattern.parse(pattern)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: HostPolicy("example.com"), "must be a list"),
        (lambda: HostPolicy([]), "empty"),
        (lambda: HostPolicy(["example.com"], redirect_to="other.com"), "not in allowed_hosts"),
        (lambda: HostPolicy(["example.com"], redirect_to="a b"), "invalid redirect_to"),
    ],
)
def test_host_policy_errors(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


POLICY = HostPolicy(["example.com", "*.example.org", "[::1]:8000", "api.example.net:8443"])


@pytest.mark.parametrize(
    ("host", "scheme", "decision"),
    [
        ("example.com", "http", ALLOW),
        ("Example.COM.", "https", ALLOW),
        ("x.example.org", "https", ALLOW),
        ("[::1]:8000", "http", ALLOW),
        ("api.example.net:8443", "https", ALLOW),
        (None, "http", HostDecision("refuse", "missing Host header")),
        ("", "http", HostDecision("refuse", "invalid Host header: empty host")),
        ("example.com,example.com", "http", HostDecision("refuse", "more than one Host header")),
        ("example.com, evil.com", "http", HostDecision("refuse", "more than one Host header")),
        ("evil.com", "http", HostDecision("refuse", "host 'evil.com' is not allowed")),
        ("example.org", "http", HostDecision("refuse", "host 'example.org' is not allowed")),
        ("[::1]:8001", "http", HostDecision("refuse", "host '[::1]:8001' is not allowed")),
        (
            "api.example.net",
            "https",
            HostDecision("refuse", "host 'api.example.net' is not allowed"),
        ),
        (
            "evil.com:80@example.com",
            "http",
            HostDecision(
                "refuse",
                "invalid Host header: not a valid host (bad port): 'evil.com:80@example.com'",
            ),
        ),
    ],
)
def test_host_policy_check(host: str | None, scheme: str, decision: HostDecision) -> None:
    assert POLICY.check(host, scheme) == decision


def test_canonical_redirect() -> None:
    policy = HostPolicy(
        ["example.com", "www.example.com", "example.com:8443"], redirect_to="example.com"
    )
    assert policy.check("example.com", "https") is ALLOW
    assert policy.check("example.com:443", "https") is ALLOW  # the same host and port
    assert policy.check("www.example.com", "https") == HostDecision(
        "redirect", "canonical host", "example.com"
    )
    assert policy.check("example.com:8443", "https").action == "redirect"
    assert policy.check("evil.com", "https").action == "refuse"  # never redirect a stranger
    # No redirect where the client cannot follow one (a websocket handshake): allowed hosts pass.
    assert policy.check("www.example.com", "wss", redirect=False) is ALLOW


def test_canonical_redirect_with_port() -> None:
    policy = HostPolicy(["*.example.com:8443"], redirect_to="www.example.com:8443")
    assert policy.check("www.example.com:8443", "https") is ALLOW
    assert policy.check("a.example.com:8443", "https") == HostDecision(
        "redirect", "canonical host", "www.example.com:8443"
    )


def test_www_redirect() -> None:
    policy = HostPolicy(["www.example.com", "10.0.0.1"], www_redirect=True)
    assert policy.check("example.com", "https") == HostDecision(
        "redirect", "www redirect", "www.example.com"
    )
    assert policy.check("example.com:8080", "http") == HostDecision(
        "redirect", "www redirect", "www.example.com:8080"
    )
    assert policy.check("www.example.com", "https") is ALLOW
    assert policy.check("other.com", "https").action == "refuse"
    assert policy.check("example.com", "wss", redirect=False).action == "refuse"
    assert HostPolicy(["www.example.com"]).check("example.com", "http").action == "refuse"


@pytest.mark.parametrize(
    ("scheme", "host", "path", "query", "location"),
    [
        ("https", "example.com", b"/a/b", b"x=1&y=%20", "https://example.com/a/b?x=1&y=%20"),
        ("http", "example.com:8080", b"/", b"", "http://example.com:8080/"),
        ("wss", "example.com", b"/ws", b"", "https://example.com/ws"),
        ("ws", "example.com", b"/ws", b"", "http://example.com/ws"),
        ("https", "example.com", b"", b"", "https://example.com/"),
        ("https", "example.com", b"a", b"", "https://example.com/a"),
        ("https", "example.com", b"/%C3%A9", b"", "https://example.com/%C3%A9"),
        # Bytes that could break the header or the URL are encoded.
        (
            "https",
            "example.com",
            b"/a\r\nSet-Cookie: x",
            b"q=\n",
            "https://example.com/a%0D%0ASet-Cookie:%20x?q=%0A",
        ),
        ("https", "example.com", b"/\xff", b"", "https://example.com/%FF"),
        ("https", "example.com", b"//evil.com/x", b"", "https://example.com//evil.com/x"),
    ],
)
def test_redirect_location(
    scheme: str, host: str, path: bytes, query: bytes, location: str
) -> None:
    assert redirect_location(scheme, host, path, query) == location


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("latin-1")))
@example("evil.com:80@good.com")
@example("[::1]:8000")
@example("[")
def test_host_check_never_raises(host: str) -> None:
    # Any header bytes (carried as latin-1, as both sides do) give a decision, never an error.
    decision = POLICY.check(host, "https")
    assert decision.action in ("allow", "refuse")
    if decision.action == "allow":
        # An allowed host is always a clean one: no header break, no second host, no user.
        assert not any(c in host for c in "\r\n\x00@, /")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60), st.binary(max_size=20))
def test_redirect_location_is_always_a_clean_header(path: bytes, query: bytes) -> None:
    location = redirect_location("https", "example.com", path, query)
    assert location.isascii()
    assert location.startswith("https://example.com/")
    assert not any(c in location for c in "\r\n\x00 ")


def test_decisions_hold_after_many_random_hosts() -> None:
    policy = HostPolicy(["example.com"])
    first = policy.check("example.com", "https")
    for i in range(1500):  # a client sending random hosts
        assert policy.check(f"h{i}.evil", "https").action == "refuse"
    assert policy.check("a" * 5000, "https").action == "refuse"
    assert policy.check("example.com", "https") == first


def test_parsed_authorities_are_remembered_in_a_bounded_cache() -> None:
    first = parse_authority("memo.example.com")
    assert parse_authority("memo.example.com") is first
    for i in range(1500):
        parse_authority(f"h{i}.example.com")
    assert parse_authority.cache_info().currsize <= 1024
    assert parse_authority("memo.example.com") == first


def test_memo_keys_on_every_input() -> None:
    policy = HostPolicy(["example.com:443", "www.example.com:443"], redirect_to="example.com")
    assert policy.check("www.example.com", "https").action == "redirect"
    assert policy.check("www.example.com", "https", redirect=False) is ALLOW
    assert policy.check("www.example.com", "http").action == "refuse"  # port 80
