"""What `crossgate.middleware.gzip` decides about a response, for both sides (its compressor
is `crossgate.sansio.gzip_codec`). Pure."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import AnyStr

__all__ = [
    "DEFAULT_EXCLUDED_TYPES",
    "DROPPED_WHEN_COMPRESSED",
    "Action",
    "Plan",
    "ResponseFacts",
    "compresses_at",
    "merge_vary",
    "negotiate",
    "plan_response",
    "planned_headers",
    "response_facts",
    "weaken_etag",
]


# Compressed already, or (server-sent events) to reach the client event by event.
_ARCHIVES = ("zip", "gzip", "x-gzip", "zstd", "x-7z-compressed", "x-rar-compressed")
DEFAULT_EXCLUDED_TYPES: frozenset[str] = frozenset(
    {"text/event-stream", "audio/*", "video/*", "font/woff", "font/woff2"}
    | {f"image/{kind}" for kind in ("png", "jpeg", "gif", "webp", "avif")}
    | {f"application/{kind}" for kind in _ARCHIVES}
)

# Untrue of a compressed body; ranges of the uncompressed one mean nothing (RFC 9110 section 14.3).
DROPPED_WHEN_COMPRESSED = frozenset({"content-length", "content-encoding", "accept-ranges"})


@functools.lru_cache(maxsize=256)
def negotiate(accept_encoding: bytes | str | None, available: tuple[str, ...]) -> str | None:
    """The coding to use from ``available`` (server preference order), or ``None`` for identity
    (RFC 9110 sections 12.5.3, 8.4.1.3); ties go to the earlier entry of ``available``."""
    if accept_encoding is None:
        return None
    if isinstance(accept_encoding, bytes):
        accept_encoding = accept_encoding.decode("latin-1")
    weights: dict[str, float] = {}
    for element in accept_encoding.split(","):
        coding, _, params = element.partition(";")
        coding = coding.strip(" \t").lower()
        if not coding:
            continue
        q = 1.0
        params = params.strip(" \t")
        if params:
            key, sep, number = params.partition("=")
            if key.strip(" \t").lower() != "q" or not sep:
                continue
            try:
                q = float(number.strip(" \t"))
            except ValueError:
                continue
            # float() also takes "nan" and "inf".
            if not 0.0 <= q <= 1.0:
                continue
        weights.setdefault("gzip" if coding == "x-gzip" else coding, q)
    star = weights.get("*", 0.0)
    best: str | None = None
    best_q = 0.0
    for coding in available:
        q = weights.get(coding, star)
        if q > best_q:
            best, best_q = coding, q
    if best is not None and weights.get("identity", 0.0) > best_q:
        best = None
    return best


class Action(Enum):
    """What to do with a response, decided from its status and headers."""

    SKIP = "skip"  # as it is
    IDENTITY = "identity"  # uncompressed, with `Plan.vary`
    COMPRESS = "compress"  # with `Plan.vary` and `Plan.etag`
    WAIT = "wait"  # `compresses_at` decides on the first body chunk


@dataclass(slots=True)
class ResponseFacts:
    """The parts of a response `plan_response` looks at: raw header values, ``None`` when
    absent, repeated ones joined with ``", "``."""

    status: int
    content_type: str | None = None
    content_encoding: str | None = None
    content_length: str | None = None
    content_range: str | None = None
    cache_control: str | None = None
    vary: str | None = None
    etag: str | None = None
    trailers: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """`plan_response`'s answer: the `Action`, the ``coding`` to apply, and the new ``Vary``
    and ``ETag`` values (``None``: leave the header as it is)."""

    action: Action
    coding: str | None = None
    vary: str | None = None
    etag: str | None = None


_SKIP = Plan(Action.SKIP)
_IDENTITY_VARY = Plan(Action.IDENTITY, vary="Accept-Encoding")


def merge_vary(existing: str | None) -> str | None:
    """The ``Vary`` value that adds ``Accept-Encoding`` to ``existing``; ``None`` if unchanged
    (RFC 9110 section 12.5.5)."""
    kept = (existing or "").strip(" \t,")
    if not kept:
        return "Accept-Encoding"
    if {token.strip(" \t").lower() for token in kept.split(",")} & {"*", "accept-encoding"}:
        return None
    return kept + ", Accept-Encoding"


def weaken_etag(etag: str | None) -> str | None:
    """``W/"x"`` for a strong ``"x"`` (RFC 9110 section 8.8.3); ``None`` when there is nothing
    to change."""
    stripped = (etag or "").strip(" \t")
    return "W/" + stripped if stripped.startswith('"') else None


@functools.lru_cache(maxsize=256)
def _excluded(content_type: str, excluded: frozenset[str]) -> bool:
    media = content_type.partition(";")[0].strip(" \t").lower()
    return media in excluded or f"{media.partition('/')[0]}/*" in excluded


def plan_response(
    facts: ResponseFacts,
    *,
    method: str,
    coding: str | None,
    minimum_size: int,
    excluded_types: frozenset[str] = DEFAULT_EXCLUDED_TYPES,
    wait_for_body: bool = False,
) -> Plan:
    """Decide what to do with a response from its status and headers (the rules are in
    docs/middleware.md, "GZip"). `Action.WAIT` when there is no ``Content-Length``, or with
    ``wait_for_body`` (the app may send a file)."""
    status = facts.status
    if status < 200 or status in (204, 206) or facts.content_range is not None:
        return _SKIP
    encoding = facts.content_encoding
    if encoding is not None and encoding.strip(" \t").lower() not in ("", "identity"):
        return _SKIP
    content_type = facts.content_type
    if facts.trailers or (content_type is not None and _excluded(content_type, excluded_types)):
        return _SKIP
    # RFC 9111 section 5.2.2.6.
    cache_control = facts.cache_control
    if cache_control is not None and any(
        d.strip(" \t").lower() == "no-transform" for d in cache_control.split(",")
    ):
        return _SKIP
    length: int | None = None
    if facts.content_length is not None:
        text = facts.content_length.strip(" \t")
        if not (text.isascii() and text.isdigit()):
            return _SKIP
        length = int(text)
    vary = merge_vary(facts.vary)
    small = length is not None and length < minimum_size
    if coding is None or method == "HEAD" or status == 304 or small:
        return _IDENTITY_VARY if facts.vary is None else Plan(Action.IDENTITY, vary=vary)
    etag = weaken_etag(facts.etag)
    if length is None or wait_for_body:
        return Plan(Action.WAIT, coding, vary, etag)
    return Plan(Action.COMPRESS, coding, vary, etag)


def compresses_at(size: int, *, complete: bool, minimum_size: int) -> bool:
    """For `Action.WAIT`: whether to compress, given the first body chunk's ``size`` and
    whether it is the whole body."""
    return not complete or size >= minimum_size


def _both_forms(*names: str) -> frozenset[str | bytes]:
    return frozenset({*names, *(name.encode("ascii") for name in names)})


_FACT_HEADERS = "content-type content-encoding content-length content-range cache-control etag vary"
_FACT_FIELDS = {
    name: header.replace("-", "_")
    for header in _FACT_HEADERS.split()
    for name in _both_forms(header)
}
_VARY = _both_forms("vary")
_ETAG = _both_forms("etag")
_DROPPED = _both_forms(*DROPPED_WHEN_COMPRESSED)


def response_facts(
    status: int, headers: Iterable[tuple[AnyStr, AnyStr]], *, trailers: bool = False
) -> ResponseFacts:
    """The `ResponseFacts` of ASGI ``(bytes, bytes)`` or WSGI ``(str, str)`` header pairs;
    repeated fields are joined (RFC 9110 section 5.3)."""
    facts = ResponseFacts(status, trailers=trailers)
    for name, value in headers:
        attr = _FACT_FIELDS.get(name.lower())
        if attr is not None:
            text = value if isinstance(value, str) else value.decode("latin-1")
            old = getattr(facts, attr)
            setattr(facts, attr, text if old is None else f"{old}, {text}")
    return facts


def planned_headers(
    headers: Iterable[tuple[AnyStr, AnyStr]],
    plan: Plan,
    coding: str | None,
    length: int | None,
    pair: Callable[[str, str], tuple[AnyStr, AnyStr]],
) -> list[tuple[AnyStr, AnyStr]]:
    """The response ``headers`` with ``plan`` applied; ``coding`` set when compressing,
    ``length`` when the compressed body is known whole; ``pair`` makes the shell's header."""
    dropped = _VARY if plan.vary is not None else frozenset()
    if coding is not None:
        dropped |= _DROPPED
        if plan.etag is not None:
            dropped |= _ETAG
    out = [(k, v) for k, v in headers if k.lower() not in dropped]
    if plan.vary is not None:
        out.append(pair("Vary", plan.vary))
    if coding is not None:
        out.append(pair("Content-Encoding", coding))
        if plan.etag is not None:
            out.append(pair("ETag", plan.etag))
        if length is not None:
            out.append(pair("Content-Length", str(length)))
    return out
