"""The proxy-headers decision (`crossgate.sansio.proxy_headers`), as tables."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crossgate.sansio.forwarded import (
    ClientAddress,
    Prefix,
)
from crossgate.sansio.proxy_headers import (
    FIELDS,
    NO_CHANGE,
    Mode,
    ProxyDecision,
    ProxyPolicy,
    TrustedPeers,
)

# --- trusted peers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "peer", "expected"),
    [
        (["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], "127.0.0.2", False),
        (["10.0.0.0/8"], "10.200.3.4", True),
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["fd00::/8"], "fd12::1", True),
        (["fd00::/8"], "fe80::1", False),
        (["::1"], "::1", True),
        (["::1"], "0:0::1", True),
        (["127.0.0.1"], "::ffff:127.0.0.1", True),  # dual-stack sockets report v4 peers so
        (["127.0.0.1"], "::ffff:127.0.0.2", False),
        (["127.0.0.1"], None, False),  # a Unix socket is only trusted when listed
        (["127.0.0.1"], "", False),
        (["unix"], None, True),
        (["unix"], "", True),
        (["unix"], "127.0.0.1", False),
        (["*"], "203.0.113.9", True),
        (["*"], None, True),
        (["127.0.0.1"], "localhost", False),  # not an address: never trusted
        (["127.0.0.1"], "/run/app.sock", False),
        ("127.0.0.1, 10.0.0.0/8", "10.1.1.1", True),  # a comma-separated string
        ("127.0.0.1, 10.0.0.0/8", "127.0.0.1", True),
        ([], "127.0.0.1", False),
    ],
)
def test_trusted_peers(trusted: str | list[str], peer: str | None, expected: bool) -> None:
    peers = TrustedPeers(trusted)
    assert peers.trusts(peer) is expected
    assert peers.trusts(peer) is expected  # the cached answer is the same


@pytest.mark.parametrize(
    ("trusted", "message"),
    [
        (["localhost"], "invalid trusted peer 'localhost'"),
        (["10.0.0.1/8"], "has host bits set"),  # a typo would widen the network: refused
        (["10.0.0.0/33"], "invalid trusted peer"),
    ],
)
def test_trusted_peers_errors(trusted: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrustedPeers(trusted)


def test_trusted_peers_cache_is_bounded() -> None:
    peers = TrustedPeers(["10.0.0.0/8"])
    for i in range(4096 + 10):
        assert peers.trusts(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert peers._matches.cache_info().currsize <= 4096


# --- the decision ------------------------------------------------------------------------------


def decide(
    values: dict[str, str],
    *,
    scheme: str = "http",
    host: str | None = "backend:8000",
    mode: Mode = "x-forwarded",
    hops: int = 1,
    fields: tuple[str, ...] = FIELDS,
) -> ProxyDecision:
    policy = ProxyPolicy(mode=mode, hops=hops, fields=fields)
    return policy.decide(values, scheme=scheme, host=host)


def test_no_headers_no_change() -> None:
    assert decide({}) is NO_CHANGE


@pytest.mark.parametrize("empty", ["", " ", ",", " , ,\t"])
def test_empty_lists_change_nothing(empty: str) -> None:
    decision = decide({"x-forwarded-for": empty, "x-forwarded-proto": empty})
    assert decision == ProxyDecision()


@pytest.mark.parametrize(
    ("values", "hops", "client"),
    [
        ({"x-forwarded-for": "203.0.113.7"}, 1, ClientAddress("203.0.113.7")),
        # The client wrote the leftmost entry; the proxy appended the address it saw.
        ({"x-forwarded-for": "6.6.6.6, 203.0.113.7"}, 1, ClientAddress("203.0.113.7")),
        ({"x-forwarded-for": "6.6.6.6,203.0.113.7,10.0.0.2"}, 2, ClientAddress("203.0.113.7")),
        ({"x-forwarded-for": "6.6.6.6, 203.0.113.7, 10.0.0.2"}, 1, ClientAddress("10.0.0.2")),
        # Fewer entries than hops: the leftmost, written by one of the trusted proxies.
        ({"x-forwarded-for": "203.0.113.7"}, 3, ClientAddress("203.0.113.7")),
        ({"x-forwarded-for": "203.0.113.7:5555"}, 1, ClientAddress("203.0.113.7", 5555)),
        ({"x-forwarded-for": "[2001:db8::1]:4711"}, 1, ClientAddress("2001:db8::1", 4711)),
        ({"x-forwarded-for": "2001:db8::1"}, 1, ClientAddress("2001:db8::1")),
        ({"x-forwarded-for": "unknown"}, 1, ClientAddress(None)),
        ({"x-forwarded-for": "203.0.113.7, , "}, 1, ClientAddress("203.0.113.7")),
    ],
)
def test_x_forwarded_for(values: dict[str, str], hops: int, client: ClientAddress) -> None:
    decision = decide(values, hops=hops)
    assert decision.client == client
    assert decision.ignored == ()


@pytest.mark.parametrize(
    ("values", "ignored"),
    [
        ({"x-forwarded-for": "evil.com"}, "for: not an IP address"),
        ({"x-forwarded-for": "1.2.3.4\r\nX-Admin: 1"}, "control characters"),
        ({"x-forwarded-for": "1.2.3.4\x00"}, "control characters"),
        ({"x-forwarded-for": "1.2.3.4:0"}, "not a valid port"),
        ({"x-forwarded-proto": "gopher"}, "proto: not http or https"),
        ({"x-forwarded-proto": "https\n"}, "control characters"),
        ({"x-forwarded-host": "evil.com:80@good.com"}, "host: not a valid host"),
        ({"x-forwarded-host": "a\rb"}, "control characters"),
        ({"x-forwarded-port": "http"}, "port: not a valid port"),
        ({"x-forwarded-prefix": "../x"}, "prefix: not a path prefix"),
        ({"x-forwarded-prefix": "/a%0d%0a"}, "prefix: prefix has an encoded control"),
    ],
)
def test_malformed_x_forwarded_values_are_ignored(values: dict[str, str], ignored: str) -> None:
    decision = decide(values)
    assert decision == ProxyDecision(ignored=decision.ignored)  # nothing changes...
    assert len(decision.ignored) == 1  # ...and the reason is given, escaped
    assert ignored in decision.ignored[0]
    assert "\r" not in decision.ignored[0]
    assert "\n" not in decision.ignored[0]


def test_one_bad_field_leaves_the_others() -> None:
    decision = decide({"x-forwarded-for": "nope", "x-forwarded-proto": "https"})
    assert decision.client is None
    assert decision.scheme == "https"
    assert len(decision.ignored) == 1


@pytest.mark.parametrize(
    ("proto", "scheme"),
    [("https", "https"), ("HTTPS", "https"), ("http", "http"), ("wss", "https"), ("ws", "http")],
)
def test_x_forwarded_proto(proto: str, scheme: str) -> None:
    decision = decide({"x-forwarded-proto": proto})
    assert decision.scheme == scheme
    assert decision.host is None  # the Host header and the server stay as they are
    assert decision.server is None


@pytest.mark.parametrize(
    ("values", "scheme", "host", "new_host", "server"),
    [
        ({"x-forwarded-host": "example.com"}, "http", "b:8000", "example.com", ("example.com", 80)),
        (
            {"x-forwarded-host": "Example.com", "x-forwarded-proto": "https"},
            "http",
            "b:8000",
            "example.com",
            ("example.com", 443),
        ),
        (
            {"x-forwarded-host": "example.com:8443", "x-forwarded-proto": "https"},
            "http",
            "b:8000",
            "example.com:8443",
            ("example.com", 8443),
        ),
        # X-Forwarded-Port wins over the port in X-Forwarded-Host.
        (
            {"x-forwarded-host": "example.com:1", "x-forwarded-port": "8443"},
            "http",
            "b",
            "example.com:8443",
            ("example.com", 8443),
        ),
        # A port alone applies to the request's own Host; a default port is not shown.
        (
            {"x-forwarded-port": "8443"},
            "http",
            "example.com:8000",
            "example.com:8443",
            ("example.com", 8443),
        ),
        (
            {"x-forwarded-port": "443", "x-forwarded-proto": "https"},
            "http",
            "example.com:8000",
            "example.com",
            ("example.com", 443),
        ),
        (
            {"x-forwarded-host": "[2001:db8::1]:8080"},
            "http",
            "b",
            "[2001:db8::1]:8080",
            ("2001:db8::1", 8080),
        ),
        ({"x-forwarded-host": "example.com"}, "wss", "b", "example.com", ("example.com", 443)),
    ],
)
def test_host_and_port(
    values: dict[str, str],
    scheme: str,
    host: str,
    new_host: str,
    server: tuple[str, int],
) -> None:
    decision = decide(values, scheme=scheme, host=host)
    assert decision.host == new_host
    assert decision.server == server


def test_port_without_a_valid_host_is_ignored() -> None:
    decision = decide({"x-forwarded-port": "8443"}, host=None)
    assert (decision.host, decision.server) == (None, None)
    assert "port: no valid Host" in decision.ignored[0]


def test_prefix() -> None:
    assert decide({"x-forwarded-prefix": "/app/"}).prefix == Prefix("/app", b"/app")
    # hops applies to every list header: the entry the outermost trusted proxy wrote.
    assert decide({"x-forwarded-prefix": "/evil, /app"}).prefix == Prefix("/app", b"/app")
    assert decide({"x-forwarded-prefix": "/"}) == ProxyDecision()


def test_fields_limit_what_is_read() -> None:
    values = {"x-forwarded-for": "1.2.3.4", "x-forwarded-host": "evil.com"}
    decision = decide(values, fields=("for", "proto"))
    assert decision.client == ClientAddress("1.2.3.4")
    assert decision.host is None
    policy = ProxyPolicy(fields=("for", "proto"))
    assert policy.header_names == ("x-forwarded-for", "x-forwarded-proto")


@pytest.mark.parametrize(
    ("forwarded", "hops", "client", "scheme", "host"),
    [
        (
            "for=192.0.2.60;proto=https;host=example.com",
            1,
            ClientAddress("192.0.2.60"),
            "https",
            "example.com",
        ),
        (
            'for="[2001:db8::1]:4711";proto=https',
            1,
            ClientAddress("2001:db8::1", 4711),
            "https",
            None,
        ),
        ('for="_hidden";proto=https', 1, ClientAddress(None), "https", None),
        ("for=unknown", 1, ClientAddress(None), None, None),
        ('for="192.0.2.60:_port"', 1, ClientAddress("192.0.2.60"), None, None),
        ('host="example.com:8443"', 1, None, None, "example.com:8443"),
        # A client-written element on the left is never used with hops=1...
        ("for=6.6.6.6;host=evil.com, for=192.0.2.60", 1, ClientAddress("192.0.2.60"), None, None),
        # ...and with hops=2 the outermost proxy's element is used, whole.
        (
            "for=6.6.6.6, for=192.0.2.60;proto=https, for=10.0.0.2;proto=http",
            2,
            ClientAddress("192.0.2.60"),
            "https",
            None,
        ),
        ("for=192.0.2.60", 5, ClientAddress("192.0.2.60"), None, None),
    ],
)
def test_forwarded(
    forwarded: str,
    hops: int,
    client: ClientAddress | None,
    scheme: str | None,
    host: str | None,
) -> None:
    decision = decide({"forwarded": forwarded}, mode="forwarded", hops=hops)
    assert (decision.client, decision.scheme, decision.host) == (client, scheme, host)
    assert decision.ignored == ()


@pytest.mark.parametrize(
    ("forwarded", "ignored"),
    [
        ("for=[2001:db8::1]", "forwarded: malformed"),
        ("for=a\r\nb", "forwarded: control characters"),
        ('for="1.2.3.4\x00"', "forwarded: control characters"),
        ("for=evil.com", "for: not an IP address"),
        ("proto=ftp", "proto: not http or https"),
        ('host="a@b"', "host: not a valid host"),
    ],
)
def test_forwarded_malformed(forwarded: str, ignored: str) -> None:
    decision = decide({"forwarded": forwarded}, mode="forwarded")
    assert (decision.client, decision.scheme, decision.host) == (None, None, None)
    assert ignored in decision.ignored[0]


def test_forwarded_mode_reads_only_forwarded_and_prefix() -> None:
    values = {
        "forwarded": 'for=192.0.2.60;prefix="/nope"',
        "x-forwarded-for": "6.6.6.6",
        "x-forwarded-proto": "https",
        "x-forwarded-prefix": "/app",
    }
    decision = decide(values, mode="forwarded")
    assert decision.client == ClientAddress("192.0.2.60")
    assert decision.scheme is None  # X-Forwarded-Proto is not read in this mode
    assert decision.prefix == Prefix("/app", b"/app")  # RFC 7239 has no prefix parameter
    assert ProxyPolicy(mode="forwarded").header_names == ("forwarded", "x-forwarded-prefix")
    assert ProxyPolicy(mode="forwarded", fields=["prefix"]).header_names == ("x-forwarded-prefix",)
    assert ProxyPolicy(mode="forwarded", fields=["for"]).header_names == ("forwarded",)


def test_x_forwarded_mode_ignores_forwarded() -> None:
    decision = decide({"forwarded": "for=192.0.2.60"})
    assert decision == ProxyDecision()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ProxyPolicy(mode="x-real-ip"), "mode must be"),  # type: ignore[arg-type]  # a bad mode on purpose
        (lambda: ProxyPolicy(hops=0), "hops must be"),
        (lambda: ProxyPolicy(hops=True), "hops must be"),
        (lambda: ProxyPolicy(hops=1.5), "hops must be"),  # type: ignore[arg-type]  # a float on purpose
        (lambda: ProxyPolicy(fields="for"), "must be a list"),
        (lambda: ProxyPolicy(fields=()), "fields must be"),
        (lambda: ProxyPolicy(fields=("for", "by")), "fields must be"),
        (lambda: ProxyPolicy(trusted=["nginx"]), "invalid trusted peer"),
    ],
)
def test_policy_errors(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


# --- properties ---------------------------------------------------------------------------------

HEADER_NAMES = (
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
)
# Header bytes as both shells hand them over: decoded as latin-1.
header_text = st.binary(max_size=60).map(lambda b: b.decode("latin-1")) | st.sampled_from(
    ['for="[::1]:80"', "1.2.3.4, 5.6.7.8", "https", "/app", "example.com:8443", "_x", '"', ";"]
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.sampled_from(HEADER_NAMES), header_text),
    st.sampled_from(["x-forwarded", "forwarded"]),
    st.integers(min_value=1, max_value=3),
    st.none() | header_text,
)
@example({"forwarded": 'for="[2001:db8::1]:4711"'}, "forwarded", 1, "a")
@example({"x-forwarded-prefix": "/%C3"}, "x-forwarded", 1, None)
def test_decide_never_raises(
    values: dict[str, str], mode: str, hops: int, host: str | None
) -> None:
    policy = ProxyPolicy(mode="forwarded" if mode == "forwarded" else "x-forwarded", hops=hops)
    decision = policy.decide(values, scheme="http", host=host)
    # Whatever came in, nothing with a header break or NUL goes out.
    forbidden = ("\r", "\n", "\x00")
    for text in (decision.host, decision.scheme, decision.prefix and decision.prefix.path):
        assert not text or not any(c in text for c in forbidden)
    if decision.client is not None and decision.client.host is not None:
        assert not any(c in decision.client.host for c in forbidden)


def test_unknown_scope_scheme_counts_as_http() -> None:
    decision = decide({"x-forwarded-host": "example.com"}, scheme="gopher")
    assert decision.server == ("example.com", 80)


def test_decisions_are_remembered_in_a_bounded_memo() -> None:
    policy = ProxyPolicy()
    values = {"x-forwarded-for": "203.0.113.7"}
    first = policy.decide(values, scheme="http", host="a")
    assert policy.decide(values, scheme="http", host="a") is first
    for i in range(1500):  # many distinct clients
        policy.decide({"x-forwarded-for": f"10.0.{i // 256}.{i % 256}"}, scheme="http", host="a")
    assert policy._remembered.cache_info().currsize <= 1024
    assert policy.decide(values, scheme="http", host="a") == first


def test_long_values_are_not_remembered() -> None:
    policy = ProxyPolicy()
    chain = ", ".join(["10.0.0.1"] * 100)
    assert policy.decide({"x-forwarded-for": chain}, scheme="http", host="a").client == (
        ClientAddress("10.0.0.1")
    )
    assert policy._remembered.cache_info().currsize == 0


def test_memo_keys_on_every_input() -> None:
    policy = ProxyPolicy()
    port = {"x-forwarded-port": "8443"}
    assert policy.decide(port, scheme="http", host="a.com").host == "a.com:8443"
    assert policy.decide(port, scheme="http", host="b.com").host == "b.com:8443"
    assert policy.decide(port, scheme="ws", host="b.com").server == ("b.com", 8443)
    assert policy.decide({"x-forwarded-port": "443"}, scheme="wss", host="b.com").host == "b.com"
    assert policy.decide({"x-forwarded-port": "443"}, scheme="ws", host="b.com").host == (
        "b.com:443"
    )


# --- IPv4-mapped client addresses (issue 19, item 8) -------------------------------------------


@pytest.mark.parametrize(
    ("values", "mode", "client"),
    [
        # A dual-stack proxy writes an IPv4 client as ::ffff:a.b.c.d: reported as the plain IPv4
        # address, so that an allow-list or a rate limit keyed on 1.2.3.4 matches it.
        ({"x-forwarded-for": "::ffff:1.2.3.4"}, "x-forwarded", ClientAddress("1.2.3.4")),
        (
            {"x-forwarded-for": "[::ffff:1.2.3.4]:4711"},
            "x-forwarded",
            ClientAddress("1.2.3.4", 4711),
        ),
        ({"x-forwarded-for": "::FFFF:102:304"}, "x-forwarded", ClientAddress("1.2.3.4")),
        ({"forwarded": 'for="[::ffff:1.2.3.4]"'}, "forwarded", ClientAddress("1.2.3.4")),
        ({"forwarded": 'for="[::ffff:1.2.3.4]:80"'}, "forwarded", ClientAddress("1.2.3.4", 80)),
        # Other IPv6 addresses stay IPv6 (compressed), including the IPv4-compatible form.
        ({"x-forwarded-for": "::1.2.3.4"}, "x-forwarded", ClientAddress("::102:304")),
        ({"forwarded": 'for="[2001:db8::1]"'}, "forwarded", ClientAddress("2001:db8::1")),
    ],
)
def test_ipv4_mapped_client_is_reported_as_ipv4(
    values: dict[str, str], mode: Mode, client: ClientAddress
) -> None:
    decision = decide(values, mode=mode)
    assert decision.client == client
    assert decision.ignored == ()
