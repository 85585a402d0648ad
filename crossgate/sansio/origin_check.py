"""The ``Origin`` check against cross-site websocket hijacking and CSRF (RFC 6454). Pure."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio.trusted_hosts import Authority, parse_authority

__all__ = [
    "PROTOCOLS",
    "SAFE_METHODS",
    "Origin",
    "OriginDecision",
    "OriginPattern",
    "OriginPolicy",
    "parse_origin",
]

PROTOCOLS = frozenset({"websocket", "http"})
# RFC 9110 section 9.2.1: safe methods change no state; only the others are checked.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# RFC 3986 section 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*", re.ASCII)
# A websocket request's own origin has its page's scheme.
_HTTP_SCHEME = {"ws": "http", "wss": "https"}
# Longer origins or hosts are never valid: not worth remembering.
_MEMO_VALUE_MAX = 300


@dataclass(frozen=True, slots=True)
class Origin:
    """A serialized origin (RFC 6454 section 6.2); ``port`` defaults to the scheme's."""

    scheme: str
    host: str
    port: int | None


def parse_origin(value: str) -> Origin:
    """Parse an ``Origin`` header value other than ``null``.

    Raises:
        PeerProtocolError: ``value`` is not ``scheme://host[:port]`` (no path, not even ``/``).
    """
    scheme, sep, rest = value.partition("://")
    scheme = scheme.lower()
    if not sep or not _SCHEME.fullmatch(scheme):
        raise PeerProtocolError(f"not an origin (scheme://host[:port]): {value!a}")
    if "/" in rest or "?" in rest or "#" in rest:
        raise PeerProtocolError(f"an origin has no path, query or fragment: {value!a}")
    authority = parse_authority(rest)
    return Origin(scheme, authority.host, authority.effective_port(scheme))


@dataclass(frozen=True, slots=True)
class OriginPattern:
    """One entry of ``allowed_origins`` (docs/middleware.md has the forms)."""

    scheme: str
    host: str
    port: int | None
    any_port: bool = False
    wildcard: bool = False
    null: bool = False

    @classmethod
    def parse(cls, text: str) -> OriginPattern:
        """Parse an ``allowed_origins`` entry.

        Raises:
            ValueError: ``text`` is not such an entry.
        """
        if text == "null":
            return cls("", "", None, null=True)
        any_port = text.endswith(":*")
        body = text.removesuffix(":*")
        scheme, _, host = body.partition("://")
        wildcard = host.startswith("*.")
        try:
            origin = parse_origin(f"{scheme}://{host[2:]}" if wildcard else body)
        except PeerProtocolError as exc:
            raise ValueError(
                f"invalid allowed origin {text!r}: {exc} (write scheme://host[:port], "
                "for example https://example.com)"
            ) from None
        if wildcard and Authority(origin.host).is_ip:
            raise ValueError(f"invalid allowed origin {text!r}: a wildcard needs a domain name")
        return cls(origin.scheme, origin.host, origin.port, any_port=any_port, wildcard=wildcard)

    def matches(self, origin: Origin) -> bool:
        """Whether this pattern allows ``origin`` (``null`` never matches)."""
        if self.null or origin.scheme != self.scheme:
            return False
        if not self.any_port and origin.port != self.port:
            return False
        if self.wildcard:
            return origin.host.endswith("." + self.host) and not Authority(origin.host).is_ip
        return origin.host == self.host


@dataclass(frozen=True, slots=True)
class OriginDecision:
    """``allowed``, or refused with a ``reason`` for the 403 and the log."""

    allowed: bool
    reason: str = ""


ALLOWED = OriginDecision(True)


class OriginPolicy:
    """Which origins may open a websocket or send an unsafe request: `OriginCheck`'s options.

    Raises:
        ValueError: an invalid pattern, or an unknown or empty ``protocols``.
    """

    def __init__(
        self,
        allowed_origins: Iterable[str],
        *,
        allow_missing: bool = False,
        protocols: Iterable[str] = ("websocket",),
        allow_same_origin: bool = True,
    ) -> None:
        for name, value in (("allowed_origins", allowed_origins), ("protocols", protocols)):
            if isinstance(value, str):
                raise ValueError(f"{name} must be a list, not the string {value!r}")
        patterns = tuple(OriginPattern.parse(text) for text in allowed_origins)
        self.allow_null = any(p.null for p in patterns)
        self.patterns = tuple(p for p in patterns if not p.null)
        self.protocols = frozenset(protocols)
        if not self.protocols or not self.protocols <= PROTOCOLS:
            raise ValueError(
                f"protocols must be some of 'websocket' and 'http', not {sorted(protocols)!r}"
            )
        self.allow_missing = allow_missing
        self.allow_same_origin = allow_same_origin
        self.check_http = "http" in self.protocols
        self.check_websocket = "websocket" in self.protocols
        # Few (origin, scheme, host) triples reach a deployment: a microsecond per request.
        self._remembered = functools.lru_cache(maxsize=1024)(self._decide)

    def applies(self, scope_type: str, method: str = "GET") -> bool:
        """Whether a ``scope_type`` (``http``, ``websocket``) request with ``method`` is checked."""
        if scope_type == "websocket":
            return self.check_websocket
        return scope_type == "http" and self.check_http and method not in SAFE_METHODS

    def check(self, origin: str | None, *, scheme: str, host: str | None) -> OriginDecision:
        """Decide on an ``Origin`` (``None``: absent), given the request's scheme and ``Host``."""
        if len(origin or "") > _MEMO_VALUE_MAX or len(host or "") > _MEMO_VALUE_MAX:
            return self._decide(origin, scheme, host)
        return self._remembered(origin, scheme, host)

    def _decide(self, origin: str | None, scheme: str, host: str | None) -> OriginDecision:
        if origin is None:
            return ALLOWED if self.allow_missing else OriginDecision(False, "missing Origin header")
        if origin == "null":
            return (
                ALLOWED if self.allow_null else OriginDecision(False, "Origin null is not allowed")
            )
        if "," in origin:  # several headers, joined
            return OriginDecision(False, "more than one Origin header")
        try:
            parsed = parse_origin(origin)
        except PeerProtocolError as exc:
            return OriginDecision(False, f"invalid Origin header: {exc}")
        if any(pattern.matches(parsed) for pattern in self.patterns):
            return ALLOWED
        if self.allow_same_origin and host is not None:
            own = _HTTP_SCHEME.get(scheme, scheme)
            with contextlib.suppress(PeerProtocolError):  # an invalid Host is no same origin
                authority = parse_authority(host)
                if parsed == Origin(own, authority.host, authority.effective_port(own)):
                    return ALLOWED
        return OriginDecision(False, f"origin {origin!a} is not allowed")
