"""Host header parsing and the allowed-hosts decision. Pure: no threads, no asyncio, no I/O.

`parse_authority` is the one parser for ``host[:port]`` values in crossgate: the `Host` header
(`TrustedHosts`), ``X-Forwarded-Host`` and the ``host`` of RFC 7239 ``Forwarded`` (`ProxyHeaders`)
and the host part of an ``Origin`` (`OriginCheck`). It accepts what RFC 9110 section 7.2 allows a
client to send (``uri-host [ ":" port ]``, with ``uri-host`` from RFC 3986 section 3.2.2), minus
the exotic forms no browser or proxy emits (percent-encoded or sub-delimiter registered names,
IPvFuture, IPv6 zone identifiers), so that anything that could smuggle a second host, a user
name or a header break (``evil.com:80@good.com``, a comma, CR/LF) is refused.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from crossgate.exceptions import PeerProtocolError

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

# A DNS-style registered name: dot-separated labels of letters, digits, "-" and "_" (the
# underscore is not valid in DNS host names, but container and service names use it and it can
# smuggle nothing), neither starting nor ending with "-"; one trailing dot for a fully
# qualified name. Lower case: the value is lower-cased first (host names are case-insensitive,
# RFC 3986 section 3.2.2).
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?", re.ASCII)
_MAX_NAME = 253


def default_port(scheme: str) -> int | None:
    """The port a URL of ``scheme`` means when it names none (``http`` 80, ``https`` 443...)."""
    return _DEFAULT_PORTS.get(scheme)


@dataclass(frozen=True, slots=True)
class Authority:
    """A validated ``host[:port]``.

    Attributes:
        host: the host as it goes into a URL or a ``Host`` header: a lower-case name without a
            trailing dot, a dotted IPv4 address, or an IPv6 address in brackets (compressed
            form, ``[::1]``).
        port: the explicit port, or ``None`` when the value named none.
    """

    host: str
    port: int | None = None

    @property
    def name(self) -> str:
        """The host without IPv6 brackets: what ASGI ``server`` and ``SERVER_NAME`` hold."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    @property
    def is_ip(self) -> bool:
        """Whether the host is an IP address rather than a name."""
        return self.host.startswith("[") or _is_ipv4(self.host)

    def effective_port(self, scheme: str) -> int | None:
        """The explicit port, or the default port of ``scheme``."""
        return self.port if self.port is not None else default_port(scheme)

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


# A dotted-quad IPv4 address in canonical form (no leading zeros, which Python's ipaddress also
# refuses): matching it is ten times cheaper than building an IPv4Address, and the hot path of
# ProxyHeaders parses one per request.
IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])",
    re.ASCII,
)


def _is_ipv4(text: str) -> bool:
    return IPV4.fullmatch(text) is not None


def parse_port(text: str) -> int:
    """Parse a decimal TCP port, 1 to 65535.

    Raises:
        PeerProtocolError: ``text`` is not such a port.
    """
    if not (0 < len(text) <= 5 and text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise PeerProtocolError(f"not a valid port: {text!a}")
    return int(text)


# A deployment sees few distinct hosts, and each of TrustedHosts, ProxyHeaders and OriginCheck
# parses one per request. Only valid values are kept (an exception is not cached), and a valid
# value is at most 260 characters long.
@functools.lru_cache(maxsize=1024)
def parse_authority(value: str) -> Authority:
    """Parse and normalize ``host[:port]`` as a `Host` header carries it.

    Names are lower-cased and lose a trailing dot (``Example.COM.`` is ``example.com``); IPv6
    literals must be bracketed (``[::1]:8000``) and are compressed. The port, when present, is
    1-65535.

    Raises:
        PeerProtocolError: ``value`` is empty, not ASCII (internationalized names travel as
            punycode, RFC 9110 section 4.2.3), holds anything but a host and a port (a user
            name, a path, a comma, whitespace, control characters), or names an impossible
            address or port. The message says which, with the value escaped.
    """
    if not value:
        raise PeerProtocolError("empty host")
    if not value.isascii():
        raise PeerProtocolError(f"host is not ASCII: {value!a}")
    port: int | None = None
    if value.startswith("["):
        # RFC 3986 section 3.2.2: IP-literal = "[" IPv6address "]" (IPvFuture and RFC 6874 zone
        # identifiers are refused: no client sends them in a Host header).
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
        if rest:
            if rest[0] != ":":
                raise PeerProtocolError(f"not a valid host: {value!a}")
            port = parse_port(rest[1:])
        return Authority(f"[{address.compressed}]", port)
    name, colon, port_text = value.partition(":")
    if colon:
        try:
            port = parse_port(port_text)
        except PeerProtocolError:
            raise PeerProtocolError(f"not a valid host (bad port): {value!a}") from None
    name = name.lower()
    if len(name) > _MAX_NAME + 1 or not _NAME.fullmatch(name):
        raise PeerProtocolError(f"not a valid host: {value!a}")
    return Authority(name[:-1] if name.endswith(".") else name, port)


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One entry of ``allowed_hosts``.

    ``example.com`` (any port), ``example.com:8443`` (that port only), ``*.example.com`` (any
    subdomain, at any depth, but not ``example.com`` itself: list both to allow both), ``[::1]``
    and ``[::1]:8000`` (IPv6 literals, bracketed), or ``*`` (any well-formed host).
    """

    host: str
    port: int | None = None
    wildcard: bool = False

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        """Parse an ``allowed_hosts`` entry.

        Raises:
            ValueError: ``text`` is not one of the forms above; the message says why.
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
        """Whether a request for ``authority`` over ``scheme`` is allowed by this pattern."""
        if self.port is not None and authority.effective_port(scheme) != self.port:
            return False
        if not self.wildcard:
            return authority.host == self.host
        if not self.host:
            return True
        return authority.host.endswith("." + self.host) and not authority.is_ip


@dataclass(frozen=True, slots=True)
class HostDecision:
    """What to do with a request, given its Host.

    Attributes:
        action: ``"allow"``, ``"refuse"`` (answer 400 with ``reason``) or ``"redirect"`` (to
            ``location_host``, keeping the scheme, path and query).
        reason: why the request is refused or redirected (for the response and the log).
        location_host: the host to redirect to, for ``"redirect"``.
    """

    action: Literal["allow", "refuse", "redirect"]
    reason: str = ""
    location_host: str = ""


ALLOW = HostDecision("allow")


class HostPolicy:
    """The allowed hosts of a deployment, and an optional canonical host to redirect to.

    Args:
        allowed_hosts: `HostPattern` texts. A single string is refused: it is almost always a
            forgotten list.
        redirect_to: a canonical ``host[:port]``; requests for any other allowed host are
            redirected there. It must itself be allowed.
        www_redirect: redirect ``example.com`` to ``www.example.com`` when only the latter is
            allowed (starlette's ``www_redirect``).

    Raises:
        ValueError: an invalid pattern, no pattern at all, or a ``redirect_to`` that is not a
            valid host or is not allowed.
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
        if authority.host in self.exact:
            return True
        return any(pattern.matches(authority, scheme) for pattern in self.patterns)

    def check(self, host: str | None, scheme: str, *, redirect: bool = True) -> HostDecision:
        """Decide on a request whose Host header is ``host`` (``None`` when it has none).

        With ``redirect`` false (a websocket handshake cannot follow a redirect), the answer is
        only ever ``allow`` or ``refuse``.

        ``host`` holding a comma means the request carried several Host headers (a WSGI server
        joins them): RFC 9112 section 3.2 requires a 400 for that, as for a missing or invalid
        one. ``scheme`` decides the default port (``http``/``ws`` 80, ``https``/``wss`` 443).
        """
        if host is None:
            return HostDecision("refuse", "missing Host header")
        if "," in host:
            return HostDecision("refuse", "more than one Host header")
        try:
            authority = parse_authority(host)
        except PeerProtocolError as exc:
            return HostDecision("refuse", f"invalid Host header: {exc}")
        if not self.allows(authority, scheme):
            if redirect and self.www_redirect and not authority.is_ip:
                www = Authority("www." + authority.host, authority.port)
                if self.allows(www, scheme):
                    return HostDecision("redirect", "www redirect", str(www))
            return HostDecision("refuse", f"host {str(authority)!r} is not allowed")
        canonical = self.redirect_to
        if (
            redirect
            and canonical is not None
            and (
                canonical.host != authority.host
                or canonical.effective_port(scheme) != authority.effective_port(scheme)
            )
        ):
            return HostDecision("redirect", "canonical host", str(canonical))
        return ALLOW


# RFC 3986 section 3.3: the characters a path may hold literally; anything else is
# percent-encoded in the Location, so no byte of the request can break the header.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"


def redirect_location(scheme: str, host: str, path: bytes, query: bytes) -> str:
    """The absolute URL to redirect to: ``scheme://host`` plus the request's path and query.

    ``path`` is the raw (still percent-encoded) path, ``root_path`` included. Bytes outside the
    RFC 3986 path and query characters are percent-encoded, so CR, LF or NUL in the request
    never reach the ``Location`` header; a path that does not start with ``/`` gets one.
    """
    http_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    target = quote(path, safe=_PATH_SAFE) or "/"
    if not target.startswith("/"):
        target = "/" + target
    if query:
        target += "?" + quote(query, safe=_QUERY_SAFE)
    return f"{http_scheme}://{host}{target}"
