"""The grammar of the proxy headers about the client: parsers raising `PeerProtocolError`. Pure."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio.trusted_hosts import IPV4, parse_port

__all__ = ["CONTROL", "ClientAddress", "Prefix", "parse_forwarded", "parse_node", "parse_prefix"]

# RFC 9110 section 5.5: no CR, LF or NUL; nor, in the values read here, other controls but HTAB.
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 7239 section 4: forwarded-pair = token "=" value; value = token / quoted-string.
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
# A pair (or none) and what ends it: "," an element, ";" a pair, or the end of the value.
_ITEM = re.compile(rf"[ \t]*(?:({_TCHARS})=({_TCHARS}|{_QUOTED})[ \t]*)?([,;]|\Z)")
_QUOTED_PAIR = re.compile(r"\\(.)")
# RFC 7239 section 6.3: obfnode = "_" 1*( ALPHA / DIGIT / "." / "_" / "-"); obfport the same.
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
# RFC 3986 section 3.3: path-abempty of pchar, complete escapes; and ASCII outside pchar and "/".
_PREFIX = re.compile(r"(?:/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)+")
_NOT_PATH = re.compile(rb"[^A-Za-z0-9\-._~!$&'()*+,;=:@/\x80-\xff]")


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """The client's address as the proxies reported it; ``host`` is ``None`` when hidden."""

    host: str | None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class Prefix:
    """A path prefix the proxy removed: ``path`` decoded (for ``root_path``), ``raw`` as sent."""

    path: str
    raw: bytes


def parse_node(text: str) -> ClientAddress:
    """Parse an ``X-Forwarded-For`` entry or RFC 7239 ``for`` value (docs/middleware.md).

    Raises:
        PeerProtocolError: anything else, such as a host name or a bad port.
    """
    if IPV4.fullmatch(text):  # the common case, first
        return ClientAddress(text)
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :] if end > 0 else "?"
        if rest and not rest.startswith(":"):
            raise PeerProtocolError(f"not a node: {text!a}")
        host: str | None = _ipv6(text[1:end])
        port_text = rest[1:]
    elif text.count(":") > 1:
        return ClientAddress(_ipv6(text))
    else:
        name, colon, port_text = text.partition(":")
        if colon and not port_text:
            raise PeerProtocolError(f"empty port in node: {text!a}")
        ipv4 = IPV4.fullmatch(name)
        if not ipv4 and name != "unknown" and not _OBFUSCATED.fullmatch(name):
            raise PeerProtocolError(f"not an IP address: {name!a}")
        host = name if ipv4 else None
    hidden = not port_text or _OBFUSCATED.fullmatch(port_text)
    return ClientAddress(host, None if hidden else parse_port(port_text))


def _ipv6(text: str) -> str:
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise PeerProtocolError(f"not an IP address: {text!a}") from None
    if address.scope_id is not None:
        raise PeerProtocolError(f"IPv6 zone identifiers are not allowed: {text!a}")
    # RFC 4291 section 2.5.5.2: a dual-stack proxy's ::ffff:1.2.3.4 is the IPv4 client.
    mapped = address.ipv4_mapped
    return address.compressed if mapped is None else str(mapped)


def parse_prefix(text: str) -> Prefix | None:
    """Parse and percent-decode an ``X-Forwarded-Prefix`` such as ``/app``; ``None`` for ``/``.

    Raises:
        PeerProtocolError: ``text`` is not such a path.
    """
    text = text.rstrip("/")
    if not text:
        return None
    if not _PREFIX.fullmatch(text):
        raise PeerProtocolError(f"not a path prefix such as /app: {text!a}")
    raw = text.encode("ascii")
    # RFC 3986 section 4.2: "//evil.com" is a network-path reference; a redirect would leave.
    if "//" in text:
        raise PeerProtocolError(f"prefix has an empty segment: {text!a}")
    decoded = unquote_to_bytes(raw)
    segments = decoded.split(b"/")
    if decoded.count(b"/") != raw.count(b"/") or b"." in segments or b".." in segments:
        raise PeerProtocolError(f"prefix has an encoded '/' or a dot segment: {text!a}")
    if CONTROL.search(decoded.decode("latin-1")):
        raise PeerProtocolError(f"prefix has an encoded control character: {text!a}")
    # Browsers drop tabs and read "\\" as "/": "/%09/evil.com" would redirect to "//evil.com".
    bad = _NOT_PATH.search(decoded)
    if bad is not None:
        raise PeerProtocolError(
            f"prefix has an encoded {bad.group()!a}, not an RFC 3986 path character: {text!a}"
        )
    try:
        path = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise PeerProtocolError(f"prefix is not UTF-8 once decoded: {text!a}") from None
    return Prefix(path, raw)


def parse_forwarded(text: str) -> list[dict[str, str]]:
    """Parse an RFC 7239 ``Forwarded`` value into its elements' parameters (names lower-cased).

    Raises:
        PeerProtocolError: the value breaks the section 4 grammar, or repeats a parameter.
    """
    elements: list[dict[str, str]] = [{}]
    pos = 0
    while True:
        match = _ITEM.match(text, pos)
        if match is None:
            raise PeerProtocolError(f"malformed Forwarded header at {text[pos:]!a}")
        name, value, end = match.groups()
        if name is not None:
            name = name.lower()
            if name in elements[-1]:
                raise PeerProtocolError(f"Forwarded element repeats {name!r}")
            if value.startswith('"'):
                value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
            elements[-1][name] = value
        if not end:
            return [element for element in elements if element]
        if end == ",":
            elements.append({})
        pos = match.end()
