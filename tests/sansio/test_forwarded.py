"""The grammar of the proxy headers (`crossgate.sansio.forwarded`), as tables."""

from __future__ import annotations

import pytest

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio.forwarded import (
    ClientAddress,
    Prefix,
    parse_forwarded,
    parse_node,
    parse_prefix,
)

# --- nodes, prefixes, Forwarded -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("192.0.2.60", ClientAddress("192.0.2.60")),
        ("192.0.2.60:4711", ClientAddress("192.0.2.60", 4711)),
        ("[2001:db8::1]", ClientAddress("2001:db8::1")),
        ("[2001:DB8:0::1]:4711", ClientAddress("2001:db8::1", 4711)),
        ("2001:db8::1", ClientAddress("2001:db8::1")),  # bare IPv6, as X-Forwarded-For has it
        ("unknown", ClientAddress(None)),  # RFC 7239 section 6.2
        ("_hidden", ClientAddress(None)),  # RFC 7239 section 6.3, obfuscated
        ("_SEVKISEK", ClientAddress(None)),
        ("_hidden:_port", ClientAddress(None)),
        ("192.0.2.60:_p1", ClientAddress("192.0.2.60")),  # obfuscated port
        ("[::1]:_p", ClientAddress("::1")),
        ("unknown:80", ClientAddress(None, 80)),
    ],
)
def test_parse_node(text: str, address: ClientAddress) -> None:
    assert parse_node(text) == address


@pytest.mark.parametrize(
    "text",
    [
        "",
        "example.com",  # names are not addresses
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.4:",
        "1.2.3.4:0",
        "1.2.3.4:99999",
        "1.2.3.4:http",
        "[2001:db8::1",
        "[2001:db8::1]x",
        "[1.2.3.4]",
        "[fe80::1%eth0]",
        "fe80::1%eth0",
        "_",
        "_hid den",
        "1.2.3.4 5",
    ],
)
def test_parse_node_refuses(text: str) -> None:
    with pytest.raises(PeerProtocolError):
        parse_node(text)


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        ("/app", Prefix("/app", b"/app")),
        ("/app/", Prefix("/app", b"/app")),
        ("/a/b", Prefix("/a/b", b"/a/b")),
        ("/caf%C3%A9", Prefix("/café", b"/caf%C3%A9")),
        ("/a%41", Prefix("/aA", b"/a%41")),  # an escaped path character is still one
        ("/a%40b:c", Prefix("/a@b:c", b"/a%40b:c")),
        ("/", None),
        ("", None),
    ],
)
def test_parse_prefix(text: str, prefix: Prefix | None) -> None:
    assert parse_prefix(text) == prefix


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app", "not a path prefix"),
        ("/a b", "not a path prefix"),
        ("/a?b", "not a path prefix"),
        ("/a#b", "not a path prefix"),
        ("/café", "not a path prefix"),  # must arrive percent-encoded
        ("/a%zz", "not a path prefix"),
        ("/a%2Fb", "encoded '/'"),
        ("/a/../admin", "dot segment"),
        ("/a/%2E%2E/admin", "dot segment"),
        ("/./a", "dot segment"),
        ("/a%0D%0ASet-Cookie:x", "control character"),
        ("/a%00", "control character"),
        ("/a%FF", "not UTF-8"),
        ("/a\r\n", "not a path prefix"),
        # Browsers drop a tab and read "\\" as "/": a redirect built on these root paths
        # would go to //evil.com. Every escaped ASCII byte outside pchar is refused alike.
        ("/%09/evil.com", "not an RFC 3986 path character"),
        ("/%5Cevil.com", "not an RFC 3986 path character"),
        ("/%5C%5Cevil.com", "not an RFC 3986 path character"),
        ("/a%20b", "not an RFC 3986 path character"),
        ("/a%2541", "not an RFC 3986 path character"),  # "%41" once decoded: double decoding
        ("/a%3Fq", "not an RFC 3986 path character"),
        ("/a%23f", "not an RFC 3986 path character"),
        ("/a%22%3C%3E", "not an RFC 3986 path character"),
        # A network-path reference: links and redirects built on it would leave the site.
        ("//evil.com", "empty segment"),
        ("/app//evil.com", "empty segment"),
    ],
)
def test_parse_prefix_refuses(text: str, message: str) -> None:
    with pytest.raises(PeerProtocolError, match=message):
        parse_prefix(text)


@pytest.mark.parametrize(
    ("text", "elements"),
    [
        ("for=192.0.2.60", [{"for": "192.0.2.60"}]),
        ("For=192.0.2.60;PROTO=https", [{"for": "192.0.2.60", "proto": "https"}]),
        # RFC 7239 section 4 examples.
        ('for="_gazonk"', [{"for": "_gazonk"}]),
        ('For="[2001:db8:cafe::17]:4711"', [{"for": "[2001:db8:cafe::17]:4711"}]),
        (
            "for=192.0.2.60;proto=http;by=203.0.113.43",
            [{"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}],
        ),
        ("for=192.0.2.43, for=198.51.100.17", [{"for": "192.0.2.43"}, {"for": "198.51.100.17"}]),
        ('for="a\\"b"', [{"for": 'a"b'}]),  # a quoted-pair
        ('host="example.com:8443"', [{"host": "example.com:8443"}]),
        ("for=a,,for=b", [{"for": "a"}, {"for": "b"}]),  # empty list elements are dropped
        ("for=a;;proto=http", [{"for": "a", "proto": "http"}]),
        (" for=a ; proto=http , for=b ", [{"for": "a", "proto": "http"}, {"for": "b"}]),
        ("", []),
        (",", []),
    ],
)
def test_parse_forwarded(text: str, elements: list[dict[str, str]]) -> None:
    assert parse_forwarded(text) == elements


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("for=[2001:db8::1]", "malformed"),  # IPv6 must be quoted (RFC 7239 section 4)
        ("for=192.0.2.60:80", "malformed"),  # so must a port
        ("for", "malformed"),
        ("for=", "malformed"),
        ('for="unterminated', "malformed"),
        ('for="a"b', "malformed"),
        ("for=a;for=b", "repeats 'for'"),
        ("for=a\r\nx=y", "malformed"),
        ('for="a\r\n"', "malformed"),
        ("=a", "malformed"),
    ],
)
def test_parse_forwarded_refuses(text: str, message: str) -> None:
    with pytest.raises(PeerProtocolError, match=message):
        parse_forwarded(text)
