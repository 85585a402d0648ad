"""What a request looked like before the reverse proxies: the `ProxyHeaders` decision. Pure."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio import forwarded
from crossgate.sansio.trusted_hosts import default_port, parse_authority, parse_port

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
_X_FIELDS = {name: field for field, name in _X_HEADERS.items()}
# Every header a client could use to pose as a proxy; removed from requests of untrusted peers.
PROXY_HEADERS = frozenset({"forwarded", *_X_HEADERS.values()})

_PROTOS = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
# Decisions on header values longer than this in all are not remembered: not worth the memory.
_MEMO_VALUE_MAX = 512


class TrustedPeers:
    """The direct peers whose proxy headers are believed: ``ProxyHeaders(trusted=...)``.

    Raises:
        ValueError: an entry is none of these (a host name would be slow and spoofable).
    """

    def __init__(self, trusted: str | Iterable[str]) -> None:
        entries = [e.strip() for e in (trusted.split(",") if isinstance(trusted, str) else trusted)]
        self.everyone = "*" in entries
        self.unix = "unix" in entries
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in (e for e in entries if e not in ("*", "unix")):
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
        """Whether a direct peer at ``address`` (``None``/``""``: a Unix socket) is trusted."""
        return self.everyone or (self._matches(address) if address else self.unix)

    def _match(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False  # a socket path or a name: never a trusted proxy
        # A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d.
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        return any(c in net for c in (ip, mapped) if c is not None for net in self.networks)


@dataclass(frozen=True, slots=True)
class ProxyDecision:
    """What to change in the scope or environ (``None``: nothing); ``prefix`` goes in front of
    ``root_path``, ``ignored`` says why each malformed value was ignored."""

    client: forwarded.ClientAddress | None = None
    scheme: str | None = None
    host: str | None = None
    server: tuple[str, int] | None = None
    prefix: forwarded.Prefix | None = None
    ignored: tuple[str, ...] = ()


NO_CHANGE = ProxyDecision()


def _parse_proto(text: str) -> str:
    scheme = _PROTOS.get(text.lower())
    if scheme is None:
        raise PeerProtocolError(f"not http or https: {text!a}")
    return scheme


_PARSERS: dict[str, Callable[[str], Any]] = {
    "for": forwarded.parse_node,
    "proto": _parse_proto,
    "host": parse_authority,
    "port": parse_port,
    "prefix": forwarded.parse_prefix,
}


class ProxyPolicy:
    """Everything `ProxyHeaders` decides with: its options but ``strip_untrusted``.

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
        # RFC 7239 has no prefix (X-Forwarded-Prefix is read) and its port is in "host"; no "by".
        x_fields = self.fields if mode == "x-forwarded" else self.fields & {"prefix"}
        x_names = tuple(_X_HEADERS[f] for f in FIELDS if f in x_fields)
        self._reads = ("forwarded", *x_names) if mode == "forwarded" else x_names
        self._forwarded_params = self.fields & {"for", "proto", "host"}
        self.header_names = x_names if not self._forwarded_params else self._reads
        # Clients send many requests with the same headers (keep-alive, a page's assets).
        self._remembered = functools.lru_cache(maxsize=1024)(self._decide)

    def trusts(self, peer: str | None) -> bool:
        """Whether the direct peer ``peer`` (``None``/``""``: a Unix socket) is trusted."""
        return self.peers.trusts(peer)

    def decide(self, values: Mapping[str, str], *, scheme: str, host: str | None) -> ProxyDecision:
        """Decide what a trusted peer's request was from its ``header_names`` (joined by ``,``)."""
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
        for name in self._reads:
            text = values.get(name)
            if text is None:
                continue
            if forwarded.CONTROL.search(text):
                ignored.append(f"{name}: control characters in {text!a}")
            elif name == "forwarded":
                try:
                    elements = forwarded.parse_forwarded(text)
                except PeerProtocolError as exc:
                    ignored.append(f"forwarded: {exc}")
                    continue
                element = elements[-min(self.hops, len(elements))] if elements else {}
                raw.update((k, v) for k, v in element.items() if k in self._forwarded_params)
            elif entries := [entry for part in text.split(",") if (entry := part.strip(" \t"))]:
                raw[_X_FIELDS[name]] = entries[-min(self.hops, len(entries))]  # the hops rule
        parsed: dict[str, Any] = {}
        for field, text in raw.items():
            try:
                parsed[field] = _PARSERS[field](text)
            except PeerProtocolError as exc:
                ignored.append(f"{field}: {exc}")
        scheme_out = parsed.get("proto")
        authority, port = parsed.get("host"), parsed.get("port")
        if authority is None and port is not None:
            try:
                authority = parse_authority(host or "")
            except PeerProtocolError as exc:
                ignored.append(f"port: no valid Host to apply it to ({exc})")
        new_host: str | None = None
        server: tuple[str, int] | None = None
        if authority is not None:
            # The scope's scheme is http, https, ws or wss (ASGI spec); any other is taken as http.
            default = default_port(scheme_out or scheme) or 80
            if port is None:
                new_host, port = str(authority), authority.port or default
            else:
                new_host = authority.host if port == default else f"{authority.host}:{port}"
            server = (authority.name, port)
        client, prefix = parsed.get("for"), parsed.get("prefix")
        return ProxyDecision(client, scheme_out, new_host, server, prefix, tuple(ignored))
