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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio.forwarded import (
    CONTROL,
    ClientAddress,
    Prefix,
    parse_forwarded,
    parse_node,
    parse_prefix,
)
from crossgate.sansio.trusted_hosts import Authority, parse_authority, parse_port

__all__ = [
    "FIELDS",
    "NO_CHANGE",
    "PROXY_HEADERS",
    "Mode",
    "ProxyDecision",
    "ProxyPolicy",
    "TrustedPeers",
]

Mode = Literal["x-forwarded", "forwarded"]
FIELDS = ("for", "proto", "host", "port", "prefix")

_X_HEADERS = {field: f"x-forwarded-{field}" for field in FIELDS}
# Every header a client could use to pose as a proxy; removed from requests of untrusted peers.
PROXY_HEADERS = frozenset({"forwarded", *_X_HEADERS.values()})

_PROTOS = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_PORTS = {"http": 80, "https": 443}
# Decisions on header values longer than this in all are not remembered: not worth the memory.
_MEMO_VALUE_MAX = 512


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
        if CONTROL.search(text):
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
            if CONTROL.search(text):
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
