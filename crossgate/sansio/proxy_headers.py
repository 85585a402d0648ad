"""What a request looked like before the reverse proxies: the `ProxyHeaders` decision. Pure.

Proxy headers tell the client's address, scheme, host, port and the prefix the proxy removed.
Anyone can write them, so they are read only from a trusted peer (`TrustedPeers`), and only the
entries the trusted proxies added. One family per deployment (reading both would let a client
use the one the proxy does not clean): ``"x-forwarded"`` (``X-Forwarded-For``, ``-Proto``,
``-Host``, ``-Port``, ``-Prefix``) or ``"forwarded"`` (RFC 7239, plus ``X-Forwarded-Prefix``).

The hops rule is werkzeug ProxyFix's: each proxy appends one entry, so the ``hops``-th entry
from the right is the outermost trusted proxy's, and all left of it came from the client; a
shorter list gives its leftmost entry (trusted addresses are never skipped). Malformed values
never raise: they are ignored, the reason returned in `ProxyDecision.ignored` for a DEBUG log.
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
    """The direct peers whose proxy headers are believed: IP addresses and networks, ``"unix"``
    for a Unix-socket peer, ``"*"`` for everyone (dangerous); a string is split on commas.

    Raises:
        ValueError: an entry is none of these (a host name would be slow and spoofable).
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
        # Parsing an address costs microseconds, and requests come from few proxies.
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

    ``scheme`` is ``http`` or ``https`` (the shell makes it ``ws``/``wss``), ``host`` the new
    ``Host``, ``server`` the new ``(name, port)``, ``prefix`` goes in front of ``root_path``,
    ``ignored`` says why each malformed value was ignored.
    """

    client: ClientAddress | None = None
    scheme: str | None = None
    host: str | None = None
    server: tuple[str, int] | None = None
    prefix: Prefix | None = None
    ignored: tuple[str, ...] = ()


NO_CHANGE = ProxyDecision()


class ProxyPolicy:
    """Trusted peers, header family, ``hops`` (trusted proxies in front) and ``fields`` (leave
    out any your proxy does not set itself): everything `ProxyHeaders` decides with.

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
        # The X- headers read: in "forwarded" mode only the prefix, which RFC 7239 lacks (its
        # port travels in "host").
        x_fields = self.fields if mode == "x-forwarded" else self.fields & {"prefix"}
        self._reads = tuple((f, _X_HEADERS[f]) for f in FIELDS if f in x_fields)
        rfc7239 = mode == "forwarded" and self.fields - {"prefix", "port"}
        # The lower-case header names this policy reads, for the shells to collect.
        self.header_names = (*(["forwarded"] if rfc7239 else []), *(n for _, n in self._reads))
        # RFC 7239 section 5 parameters read; "by" (the proxy's own interface) never is.
        self._forwarded_params = self.fields & {"for", "proto", "host"}
        # Clients send many requests with the same headers (keep-alive, a page's assets).
        self._remembered = functools.lru_cache(maxsize=1024)(self._decide)

    def trusts(self, peer: str | None) -> bool:
        """Whether the direct peer ``peer`` (``None``/``""``: a Unix socket) is trusted."""
        return self.peers.trusts(peer)

    def _pick(self, name: str, text: str, ignored: list[str]) -> str | None:
        """The entry of list header ``name`` the trusted proxies wrote (the hops rule)."""
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
        """Decide what a request from a trusted peer really was, from ``values`` (the headers
        of ``header_names`` it has, repeats joined with ``,``), its scheme and ``Host``.

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
        raw = self._forwarded(values, ignored) if self.mode == "forwarded" else {}
        for field, name in self._reads:
            text = values.get(name)
            if text is not None:
                picked = self._pick(name, text, ignored)
                if picked is not None:
                    raw[field] = picked
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
        text = values.get("forwarded")
        if text is None:
            return {}
        if CONTROL.search(text):
            ignored.append(f"forwarded: control characters in {text!a}")
            return {}
        try:
            elements = parse_forwarded(text)
        except PeerProtocolError as exc:
            ignored.append(f"forwarded: {exc}")
            return {}
        if not elements:
            return {}
        element = elements[-min(self.hops, len(elements))]
        return {k: v for k, v in element.items() if k in self._forwarded_params}

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
