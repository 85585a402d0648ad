"""Host parsing (crossgate's one ``host[:port]`` parser) and the allowed-hosts decision. Pure."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio.paths import QUERY_SAFE, RAW_SAFE

__all__ = [
    "ALLOW",
    "IPV4",
    "Authority",
    "HostDecision",
    "HostPattern",
    "HostPolicy",
    "default_port",
    "parse_authority",
    "parse_port",
    "redirect_location",
]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_HTTP_SCHEMES = {"ws": "http", "wss": "https"}
# Labels of a-z, 0-9, "-" (not at either end) and "_" (container names); one trailing dot.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?", re.ASCII)
# A canonical dotted-quad IPv4 address: ten times cheaper to match than an IPv4Address to build.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)


def default_port(scheme: str) -> int | None:
    """The port a URL of ``scheme`` means when it names none (``http`` 80, ``https`` 443...)."""
    return _DEFAULT_PORTS.get(scheme)


@dataclass(frozen=True, slots=True)
class Authority:
    """A validated ``host[:port]``, ``host`` as it goes into a URL (IPv6 in brackets)."""

    host: str
    port: int | None = None

    @property
    def name(self) -> str:
        """The host without IPv6 brackets: what ASGI ``server`` and ``SERVER_NAME`` hold."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    @property
    def is_ip(self) -> bool:
        """Whether the host is an IP address rather than a name."""
        return self.host.startswith("[") or IPV4.fullmatch(self.host) is not None

    def effective_port(self, scheme: str) -> int | None:
        """The explicit port, or the default port of ``scheme``."""
        return self.port if self.port is not None else default_port(scheme)

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


def parse_port(text: str) -> int:
    """Parse a decimal TCP port, 1 to 65535.

    Raises:
        PeerProtocolError: ``text`` is not such a port.
    """
    if not (0 < len(text) <= 5 and text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise PeerProtocolError(f"not a valid port: {text!a}")
    return int(text)


@functools.lru_cache(maxsize=1024)  # a deployment sees few hosts
def parse_authority(value: str) -> Authority:
    """Parse and normalize ``host[:port]``: ``Example.COM.`` is ``example.com``, IPv6 compressed.

    Raises:
        PeerProtocolError: ``value`` is empty, not ASCII or not a host and port.
    """
    if not value:
        raise PeerProtocolError("empty host")
    if not value.isascii():
        raise PeerProtocolError(f"host is not ASCII: {value!a}")
    if value.startswith("["):  # RFC 3986 section 3.2.2: IP-literal = "[" IPv6address "]"
        end = value.find("]")
        if end < 0:
            raise PeerProtocolError(f"unclosed IPv6 literal in host: {value!a}")
        try:
            address = ipaddress.IPv6Address(value[1:end])
        except ValueError:
            raise PeerProtocolError(f"not a valid IPv6 address: {value!a}") from None
        if address.scope_id is not None:
            raise PeerProtocolError(f"IPv6 zone identifiers are not allowed: {value!a}")
        rest = value[end + 1 :]
        if rest and rest[0] != ":":
            raise PeerProtocolError(f"not a valid host: {value!a}")
        return Authority(f"[{address.compressed}]", parse_port(rest[1:]) if rest else None)
    name, colon, port_text = value.partition(":")
    port: int | None = None
    if colon:
        try:
            port = parse_port(port_text)
        except PeerProtocolError:
            raise PeerProtocolError(f"not a valid host (bad port): {value!a}") from None
    name = name.lower()
    if len(name) > 254 or not _NAME.fullmatch(name):  # 253, and a trailing dot
        raise PeerProtocolError(f"not a valid host: {value!a}")
    return Authority(name.removesuffix("."), port)


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One entry of ``allowed_hosts`` (docs/middleware.md has the forms)."""

    host: str
    port: int | None = None
    wildcard: bool = False

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        """Parse an ``allowed_hosts`` entry.

        Raises:
            ValueError: ``text`` is not such an entry.
        """
        if text == "*":
            return cls("", None, wildcard=True)
        wildcard = text.startswith("*.")
        try:
            authority = parse_authority(text[2:] if wildcard else text)
        except PeerProtocolError as exc:
            hint = " (write IPv6 addresses in brackets: [::1])" if text.count(":") > 1 else ""
            raise ValueError(f"invalid allowed host {text!r}: {exc}{hint}") from None
        if wildcard and authority.is_ip:
            raise ValueError(f"invalid allowed host {text!r}: a wildcard needs a domain name")
        return cls(authority.host, authority.port, wildcard)

    def matches(self, authority: Authority, scheme: str) -> bool:
        """Whether this pattern allows ``authority`` over ``scheme``."""
        if self.port is not None and authority.effective_port(scheme) != self.port:
            return False
        if not self.wildcard:
            return authority.host == self.host
        return not self.host or (authority.host.endswith("." + self.host) and not authority.is_ip)


@dataclass(frozen=True, slots=True)
class HostDecision:
    """What to do with a request: ``allow``, ``refuse`` or ``redirect`` (to ``location_host``)."""

    action: Literal["allow", "refuse", "redirect"]
    reason: str = ""
    location_host: str = ""


ALLOW = HostDecision("allow")


class HostPolicy:
    """`TrustedHosts`' options: the allowed hosts, a canonical ``redirect_to``, ``www_redirect``.

    Raises:
        ValueError: an invalid pattern, no pattern, or an invalid or not allowed ``redirect_to``.
    """

    def __init__(
        self,
        allowed_hosts: Iterable[str],
        *,
        redirect_to: str | None = None,
        www_redirect: bool = False,
    ) -> None:
        if isinstance(allowed_hosts, str):
            raise ValueError(
                f"allowed_hosts must be a list of hosts, not the string {allowed_hosts!r}"
            )
        self.patterns = tuple(HostPattern.parse(text) for text in allowed_hosts)
        if not self.patterns:
            raise ValueError("allowed_hosts is empty: no request could ever be served")
        self.exact = frozenset(p.host for p in self.patterns if not p.wildcard and p.port is None)
        self.redirect_to: Authority | None = None
        if redirect_to is not None:
            try:
                self.redirect_to = parse_authority(redirect_to)
            except PeerProtocolError as exc:
                raise ValueError(f"invalid redirect_to {redirect_to!r}: {exc}") from None
            if not any(self.allows(self.redirect_to, scheme) for scheme in ("http", "https")):
                raise ValueError(f"redirect_to {redirect_to!r} is not in allowed_hosts")
        self.www_redirect = www_redirect

    def allows(self, authority: Authority, scheme: str) -> bool:
        """Whether any pattern allows ``authority`` over ``scheme``."""
        exact = authority.host in self.exact
        return exact or any(pattern.matches(authority, scheme) for pattern in self.patterns)

    def check(self, host: str | None, scheme: str, *, redirect: bool = True) -> HostDecision:
        """Decide on a Host header (``None``: none); no redirect where one cannot be followed."""
        if host is None:
            return HostDecision("refuse", "missing Host header")
        if "," in host:  # several Host lines, joined: RFC 9112 section 3.2 asks for a 400
            return HostDecision("refuse", "more than one Host header")
        try:
            authority = parse_authority(host)
        except PeerProtocolError as exc:
            return HostDecision("refuse", f"invalid Host header: {exc}")
        if not self.allows(authority, scheme):
            www = Authority("www." + authority.host, authority.port)
            if redirect and self.www_redirect and not authority.is_ip and self.allows(www, scheme):
                return HostDecision("redirect", "www redirect", str(www))
            return HostDecision("refuse", f"host {str(authority)!r} is not allowed")
        canonical = self.redirect_to
        if redirect and canonical is not None:
            port = canonical.effective_port(scheme)
            if canonical.host != authority.host or port != authority.effective_port(scheme):
                return HostDecision("redirect", "canonical host", str(canonical))
        return ALLOW


def redirect_location(scheme: str, host: str, path: bytes, query: bytes) -> str:
    """The absolute URL ``scheme://host`` + raw ``path`` and ``query``, escaped (RFC 3986 3.3)."""
    target = quote(path, safe=RAW_SAFE) or "/"
    if not target.startswith("/"):
        target = "/" + target
    if query:
        target += "?" + quote(query, safe=QUERY_SAFE)
    return f"{_HTTP_SCHEMES.get(scheme, scheme)}://{host}{target}"
