"""What a request looked like before the reverse proxies: the `ProxyHeaders` decision. Pure.

A proxy in front of the app tells it, in headers, what the client sent: its address, the scheme,
the host and port it asked for and the path prefix the proxy removed. Anyone can write those
headers, so they are read only when the direct peer is a trusted proxy (`TrustedPeers`), and
only the entries the trusted proxies themselves added (`ProxyPolicy` with ``hops``).

Two header families, one chosen per deployment (reading both would let a client use the one the
proxy does not clean):

* ``"x-forwarded"``: ``X-Forwarded-For``, ``-Proto``, ``-Host``, ``-Port``, ``-Prefix`` (de facto
  standard; nginx, HAProxy, AWS ALB, Traefik);
* ``"forwarded"``: RFC 7239 ``Forwarded`` (``for``, ``proto``, ``host`` parameters), plus
  ``X-Forwarded-Prefix``, since RFC 7239 has no parameter for a path prefix.

The hops rule (werkzeug ProxyFix's): every proxy appends one entry to each list, so with ``hops``
proxies in front, the ``hops``-th entry from the right is the one the outermost trusted proxy
wrote about the client, and everything left of it came from the client and is never used. A
header with fewer entries than ``hops`` (a proxy that overwrites rather than appends, or a
request that came through fewer proxies) gives its leftmost entry, which one of the trusted
proxies wrote. Entries are never skipped for being trusted addresses themselves.

Malformed values never raise: the field is ignored, the original value kept, and the reason is
returned in `ProxyDecision.ignored` for the shell to log at DEBUG.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_to_bytes

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio.trusted_hosts import IPV4, Authority, parse_authority, parse_port

__all__ = [
    "FIELDS",
    "NO_CHANGE",
    "PROXY_HEADERS",
    "ClientAddress",
    "Mode",
    "Prefix",
    "ProxyDecision",
    "ProxyPolicy",
    "TrustedPeers",
    "parse_forwarded",
    "parse_node",
    "parse_prefix",
]

Mode = Literal["x-forwarded", "forwarded"]
FIELDS = ("for", "proto", "host", "port", "prefix")

_X_HEADERS = {field: f"x-forwarded-{field}" for field in FIELDS}
# Every header a client could use to pose as a proxy; removed from requests of untrusted peers.
PROXY_HEADERS = frozenset({"forwarded", *_X_HEADERS.values()})

# RFC 9110 section 5.5: no field value holds CR, LF or NUL, and none of the values read here may
# hold any other control character (HTAB aside, which is whitespace).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# RFC 7239 section 4: forwarded-pair = token "=" value; value = token / quoted-string (RFC 9110
# section 5.6). Whitespace around the pair is tolerated, as around list items.
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_PAIR = re.compile(rf"[ \t]*({_TCHARS})=({_TCHARS}|{_QUOTED})[ \t]*")
_QUOTED_PAIR = re.compile(r"\\(.)")

# RFC 7239 section 6.3: obfnode = "_" 1*( ALPHA / DIGIT / "." / "_" / "-"); obfport the same.
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")

# RFC 3986 section 3.3: path-abempty made of pchar; percent escapes must be complete.
_PREFIX = re.compile(r"(?:/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)+")
# The ASCII bytes outside pchar and "/" (RFC 3986 sections 3.3 and 2), in a decoded prefix.
_NOT_PATH = re.compile(rb"[^A-Za-z0-9\-._~!$&'()*+,;=:@/\x80-\xff]")

_PROTOS = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
# Decisions on header values longer than this in all are not remembered: not worth the memory.
_MEMO_VALUE_MAX = 512
_PORTS = {"http": 80, "https": 443}


class TrustedPeers:
    """The direct peers whose proxy headers are believed.

    Args:
        trusted: IP addresses and networks (``"10.0.0.0/8"``, ``"fd00::/8"``), ``"unix"`` for a
            Unix-socket peer (no client address), and ``"*"`` for everyone (dangerous: any
            client can then choose its address, scheme and host). A string is split on commas.

    Raises:
        ValueError: an entry is none of these (host names are refused: resolving them per
            request would be slow and spoofable).
    """

    def __init__(self, trusted: str | Iterable[str]) -> None:
        entries = trusted.split(",") if isinstance(trusted, str) else list(trusted)
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.everyone = False
        self.unix = False
        for raw in entries:
            entry = raw.strip()
            if entry == "*":
                self.everyone = True
            elif entry == "unix":
                self.unix = True
            else:
                try:
                    networks.append(ipaddress.ip_network(entry))
                except ValueError as exc:
                    raise ValueError(
                        f"invalid trusted peer {entry!r}: {exc} (use IP addresses, networks "
                        "such as 10.0.0.0/8, 'unix' or '*')"
                    ) from None
        self.networks = tuple(networks)
        # Parsing an address costs microseconds, and requests come from few proxies. Bounded:
        # a flood of distinct client addresses evicts old entries instead of growing it.
        self._matches = functools.lru_cache(maxsize=4096)(self._match)

    def trusts(self, address: str | None) -> bool:
        """Whether a direct peer at ``address`` (``None`` or ``""``: a Unix socket) is trusted."""
        if self.everyone:
            return True
        if not address:
            return self.unix
        return self._matches(address)

    def _match(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False  # not an IP (a socket path, a name): never a trusted proxy
        candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            # A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d.
            candidates.append(ip.ipv4_mapped)
        return any(c in net for c in candidates for net in self.networks)


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """The client's address as the proxies reported it.

    ``host`` is ``None`` when the proxy hid it (RFC 7239 ``unknown`` or an obfuscated
    identifier such as ``_hidden``); ``port`` is ``None`` when no port was given.
    """

    host: str | None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class Prefix:
    """A path prefix the proxy removed: ``path`` decoded (for ``root_path``), ``raw`` as sent."""

    path: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class ProxyDecision:
    """What to change in the scope or environ; ``None`` fields are left as they are.

    Attributes:
        client: the client's address.
        scheme: ``"http"`` or ``"https"`` (the shell turns it into ``ws``/``wss`` for a
            websocket).
        host: the new ``Host`` header value.
        server: the new ``(name, port)`` of the server the client addressed; ``name`` without
            IPv6 brackets.
        prefix: the path prefix to put in front of ``root_path`` / ``SCRIPT_NAME`` and the path.
        ignored: why each malformed value was ignored (for a DEBUG log).
    """

    client: ClientAddress | None = None
    scheme: str | None = None
    host: str | None = None
    server: tuple[str, int] | None = None
    prefix: Prefix | None = None
    ignored: tuple[str, ...] = ()


NO_CHANGE = ProxyDecision()


def parse_node(text: str) -> ClientAddress:
    """Parse a client node: ``X-Forwarded-For`` entry or RFC 7239 ``for`` value (unquoted).

    Accepts ``1.2.3.4``, ``1.2.3.4:4711``, ``[2001:db8::1]``, ``[2001:db8::1]:4711``, a bare
    ``2001:db8::1`` (common in ``X-Forwarded-For``), ``unknown`` and obfuscated identifiers
    (``_hidden``, RFC 7239 section 6.3; ports may be obfuscated too). IPv6 addresses come out
    compressed (``2001:DB8:0::1`` is ``2001:db8::1``), and IPv4-mapped ones as the plain IPv4
    address (``::ffff:1.2.3.4`` is ``1.2.3.4``).

    Raises:
        PeerProtocolError: anything else, such as a host name or a bad port.
    """
    if IPV4.fullmatch(text):  # the common case, first
        return ClientAddress(text)
    port_text = ""
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :] if end > 0 else "?"
        if rest and not rest.startswith(":"):
            raise PeerProtocolError(f"not a node: {text!a}")
        name, port_text = text[1:end], rest[1:]
        host = _ipv6(name)
    elif text.count(":") > 1:
        host = _ipv6(text)
    else:
        name, colon, port_text = text.partition(":")
        if colon and not port_text:
            raise PeerProtocolError(f"empty port in node: {text!a}")
        if IPV4.fullmatch(name):
            host = name
        elif name == "unknown" or _OBFUSCATED.fullmatch(name):
            host = None
        else:
            raise PeerProtocolError(f"not an IP address: {name!a}")
    port: int | None = None
    if port_text and not _OBFUSCATED.fullmatch(port_text):
        port = parse_port(port_text)
    return ClientAddress(host, port)


def _ipv6(text: str) -> str:
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise PeerProtocolError(f"not an IP address: {text!a}") from None
    if address.scope_id is not None:
        raise PeerProtocolError(f"IPv6 zone identifiers are not allowed: {text!a}")
    # An IPv4-mapped address (RFC 4291 section 2.5.5.2, what a dual-stack proxy writes for an
    # IPv4 client) is the IPv4 client: reported as plain "1.2.3.4", so that allow-lists and
    # rate limits keyed on the IPv4 address match it whichever way the proxy wrote it
    # (compressing it would give "::ffff:102:304").
    mapped = address.ipv4_mapped
    if mapped is not None:
        return str(mapped)
    return address.compressed


def parse_prefix(text: str) -> Prefix | None:
    """Parse an ``X-Forwarded-Prefix`` value such as ``/app``; ``None`` for ``/`` (no prefix).

    A trailing ``/`` is dropped. The prefix is percent-decoded for ``root_path``; empty
    segments, escapes of ``/``, dot segments, control characters, any other escaped ASCII
    character outside RFC 3986's path characters (``%09``, ``%5C``, ``%20``, ``%25``, ``%3F``)
    and invalid UTF-8 are refused, since each would make the prefix mean something else than
    the path the proxy removed, or let a URL built on it leave the site.

    Raises:
        PeerProtocolError: ``text`` is not such a path.
    """
    text = text.rstrip("/")
    if not text:
        return None
    if not _PREFIX.fullmatch(text):
        raise PeerProtocolError(f"not a path prefix such as /app: {text!a}")
    raw = text.encode("ascii")
    # An empty segment ("//evil.com") would make the prefix a network-path reference (RFC 3986
    # section 4.2): URLs built on it, a redirect's Location among them, would leave the site.
    if "//" in text:
        raise PeerProtocolError(f"prefix has an empty segment: {text!a}")
    decoded = unquote_to_bytes(raw)
    segments = decoded.split(b"/")
    if decoded.count(b"/") != raw.count(b"/") or b"." in segments or b".." in segments:
        raise PeerProtocolError(f"prefix has an encoded '/' or a dot segment: {text!a}")
    if _CONTROL.search(decoded.decode("latin-1")):
        raise PeerProtocolError(f"prefix has an encoded control character: {text!a}")
    # Browsers drop tabs from URLs and read "\\" as "/", so "/%09/evil.com" and "/%5Cevil.com"
    # would be "//evil.com" in a redirect built from the root path; "%", "?", "#", spaces and
    # quotes would change what such a URL means too. Once decoded, every ASCII byte must be a
    # character RFC 3986 section 3.3 allows literally in a path (pchar or "/"); bytes from 0x80
    # up may only spell UTF-8 text (RFC 3987 ucschar, checked below), which no browser reads as
    # a delimiter.
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
    """Parse an RFC 7239 ``Forwarded`` value into its elements, each a dict of parameters.

    Parameter names are lower-cased; quoted values are unquoted. Empty list elements are
    dropped (RFC 9110 section 5.6.1).

    Raises:
        PeerProtocolError: the value does not follow the RFC 7239 section 4 grammar (an unquoted
            ``[`` or ``:``, a stray character, an unterminated quote), or an element repeats a
            parameter (section 4: "MUST NOT occur more than once").
    """
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in " \t":
            pos += 1
        if pos < end and text[pos] not in ",;":
            match = _PAIR.match(text, pos)
            if match is None:
                raise PeerProtocolError(f"malformed Forwarded header at {text[pos:]!a}")
            name, value = match.group(1).lower(), match.group(2)
            if name in current:
                raise PeerProtocolError(f"Forwarded element repeats {name!r}")
            if value.startswith('"'):
                value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
            current[name] = value
            pos = match.end()
        if pos == end:
            break
        if text[pos] == ",":
            if current:
                elements.append(current)
            current = {}
        elif text[pos] != ";":
            raise PeerProtocolError(f"malformed Forwarded header at {text[pos:]!a}")
        pos += 1
    if current:
        elements.append(current)
    return elements


class ProxyPolicy:
    """Trusted peers, header family, hops and fields: everything `ProxyHeaders` decides with.

    Args:
        trusted: see `TrustedPeers`.
        mode: ``"x-forwarded"`` or ``"forwarded"``.
        hops: how many trusted proxies stand in front of the app (at least 1).
        fields: which of ``for``, ``proto``, ``host``, ``port``, ``prefix`` to take from the
            headers; leave out any your proxy does not set or clear itself (nginx passes a
            client's ``X-Forwarded-Host`` through unless told to set it).

    Raises:
        ValueError: an invalid option; the message names it.
    """

    def __init__(
        self,
        *,
        trusted: str | Iterable[str] = ("127.0.0.1", "::1"),
        mode: Mode = "x-forwarded",
        hops: int = 1,
        fields: Iterable[str] = FIELDS,
    ) -> None:
        if mode not in ("x-forwarded", "forwarded"):
            raise ValueError(f"mode must be 'x-forwarded' or 'forwarded', not {mode!r}")
        if isinstance(hops, bool) or not isinstance(hops, int) or hops < 1:
            raise ValueError(f"hops must be an int of at least 1, not {hops!r}")
        if isinstance(fields, str):
            raise ValueError(f"fields must be a list, not the string {fields!r}")
        self.fields = frozenset(fields)
        if not self.fields or not self.fields <= set(FIELDS):
            raise ValueError(f"fields must be some of {', '.join(FIELDS)}; got {sorted(fields)}")
        self.peers = TrustedPeers(trusted)
        self.mode = mode
        self.hops = hops
        if mode == "x-forwarded":
            names = [_X_HEADERS[field] for field in FIELDS if field in self.fields]
        else:
            # RFC 7239 has no port parameter (the port travels in "host") and no prefix.
            names = ["forwarded"] if self.fields - {"prefix", "port"} else []
            if "prefix" in self.fields:
                names.append(_X_HEADERS["prefix"])
        # The lower-case header names this policy reads, for the shells to collect.
        self.header_names = tuple(names)
        self._reads = tuple((f, _X_HEADERS[f]) for f in FIELDS if f in self.fields)
        # RFC 7239 section 5 parameters read; "by" (the proxy's own interface) never is.
        self._forwarded_params = self.fields & {"for", "proto", "host"}
        # Clients send many requests with the same headers (keep-alive, a page's assets).
        self._remembered = functools.lru_cache(maxsize=1024)(self._decide)

    def trusts(self, peer: str | None) -> bool:
        """Whether the direct peer ``peer`` (``None``/``""``: a Unix socket) is trusted."""
        return self.peers.trusts(peer)

    def _pick(self, name: str, text: str, ignored: list[str]) -> str | None:
        """The entry of list header ``name`` the trusted proxies wrote (see the module doc)."""
        if _CONTROL.search(text):
            ignored.append(f"{name}: control characters in {text!a}")
            return None
        if "," not in text:  # the common case: one proxy, one entry
            return text.strip(" \t") or None
        entries = [entry for part in text.split(",") if (entry := part.strip(" \t"))]
        if not entries:
            return None
        return entries[-min(self.hops, len(entries))]

    def decide(self, values: Mapping[str, str], *, scheme: str, host: str | None) -> ProxyDecision:
        """Decide what a request from a trusted peer really was.

        Args:
            values: the headers named in ``header_names`` that the request has, by lower-case
                name; repeated header lines joined with ``,`` (RFC 9110 section 5.3).
            scheme: the scope's scheme (``http``, ``https``, ``ws``, ``wss``).
            host: the request's ``Host`` header, or ``None``.

        Never raises for any header content: malformed values are listed in ``ignored``.
        """
        if not values:
            return NO_CHANGE
        items = tuple(values.items())
        if sum(map(len, values.values())) + len(host or "") > _MEMO_VALUE_MAX:
            return self._decide(items, scheme, host)
        return self._remembered(items, scheme, host)

    def _decide(
        self, items: tuple[tuple[str, str], ...], scheme: str, host: str | None
    ) -> ProxyDecision:
        values = dict(items)
        ignored: list[str] = []
        raw: dict[str, str] = {}
        if self.mode == "x-forwarded":
            for field, name in self._reads:
                text = values.get(name)
                if text is not None:
                    picked = self._pick(name, text, ignored)
                    if picked is not None:
                        raw[field] = picked
        else:
            raw = self._forwarded(values, ignored)
        client: ClientAddress | None = None
        scheme_out: str | None = None
        authority: Authority | None = None
        port: int | None = None
        prefix: Prefix | None = None
        for field, text in raw.items():
            try:
                if field == "for":
                    client = parse_node(text)
                elif field == "proto":
                    scheme_out = _PROTOS.get(text.lower())
                    if scheme_out is None:
                        raise PeerProtocolError(f"not http or https: {text!a}")
                elif field == "host":
                    authority = parse_authority(text)
                elif field == "port":
                    port = parse_port(text)
                else:
                    prefix = parse_prefix(text)
            except PeerProtocolError as exc:
                ignored.append(f"{field}: {exc}")
        new_host, server = self._server(authority, port, scheme_out or scheme, host, ignored)
        return ProxyDecision(client, scheme_out, new_host, server, prefix, tuple(ignored))

    def _forwarded(self, values: Mapping[str, str], ignored: list[str]) -> dict[str, str]:
        raw: dict[str, str] = {}
        text = values.get("forwarded")
        if text is not None:
            if _CONTROL.search(text):
                ignored.append(f"forwarded: control characters in {text!a}")
            else:
                try:
                    elements = parse_forwarded(text)
                except PeerProtocolError as exc:
                    ignored.append(f"forwarded: {exc}")
                    elements = []
                if elements:
                    element = elements[-min(self.hops, len(elements))]
                    raw = {k: v for k, v in element.items() if k in self._forwarded_params}
        prefix = values.get(_X_HEADERS["prefix"])
        if prefix is not None and "prefix" in self.fields:
            picked = self._pick(_X_HEADERS["prefix"], prefix, ignored)
            if picked is not None:
                raw["prefix"] = picked
        return raw

    @staticmethod
    def _server(
        authority: Authority | None,
        port: int | None,
        scheme: str,
        host: str | None,
        ignored: list[str],
    ) -> tuple[str | None, tuple[str, int] | None]:
        """The new Host header and server, when a host or port was forwarded."""
        if authority is None and port is None:
            return None, None
        base = authority
        if base is None:
            try:
                base = parse_authority(host or "")
            except PeerProtocolError as exc:
                ignored.append(f"port: no valid Host to apply it to ({exc})")
                return None, None
        # The scope's scheme is http, https, ws or wss (ASGI spec); any other is taken as http.
        scheme = _PROTOS.get(scheme, "http")
        if port is None:
            return str(base), (base.name, base.port or _PORTS[scheme])
        shown = base.host if port == _PORTS[scheme] else f"{base.host}:{port}"
        return shown, (base.name, port)
