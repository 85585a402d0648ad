"""``crossgate.sansio.gzip``: negotiation, the response plan, the headers read and rewritten."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossgate.sansio import gzip as gzip_decision
from crossgate.sansio.gzip import (
    DEFAULT_EXCLUDED_TYPES,
    Action,
    Plan,
    ResponseFacts,
    compresses_at,
    merge_vary,
    negotiate,
    plan_response,
    planned_headers,
    response_facts,
    weaken_etag,
)

BOTH = ("br", "gzip")
GZIP_ONLY = ("gzip",)


@pytest.mark.parametrize(
    ("header", "available", "expected"),
    [
        (None, BOTH, None),  # no header: identity (clients that send none rarely decode)
        (b"", BOTH, None),
        (b"gzip", BOTH, "gzip"),
        (b"GZIP", BOTH, "gzip"),  # codings are case-insensitive
        (b"x-gzip", BOTH, "gzip"),  # RFC 9110 section 8.4.1.3
        (b"gzip, deflate, br", BOTH, "br"),  # equal q: the server's preference
        (b"gzip, deflate, br", GZIP_ONLY, "gzip"),
        (b"br", GZIP_ONLY, None),
        (b"deflate", BOTH, None),
        (b"gzip;q=1.0, br;q=0.5", BOTH, "gzip"),
        (b"gzip;q=0.2, br;q=0.3", BOTH, "br"),
        (b"gzip ; q=0.5", BOTH, "gzip"),
        (b"gzip;q=0", BOTH, None),  # refused explicitly
        (b"gzip;q=0, br;q=0", BOTH, None),
        (b"gzip;q=0.000", BOTH, None),
        (b"*", BOTH, "br"),
        (b"*;q=0.5, gzip;q=0.6", BOTH, "gzip"),
        (b"*;q=0", BOTH, None),
        (b"*, br;q=0", BOTH, "gzip"),
        (b"identity", BOTH, None),
        (b"identity;q=0", BOTH, None),  # nothing acceptable: identity all the same
        (b"identity;q=0, gzip", BOTH, "gzip"),
        (b"gzip;q=0.5, identity;q=1", BOTH, None),  # identity explicitly preferred
        (b"gzip;q=0.5, identity;q=0.5", BOTH, "gzip"),
        # Malformed elements are skipped, never fatal.
        (b"gzip;q=abc", BOTH, None),
        (b"gzip;q=2", BOTH, None),
        (b"gzip;q=-1", BOTH, None),
        (b"gzip;q=nan", BOTH, None),
        (b"gzip;level=1", BOTH, None),
        (b"gzip;q", BOTH, None),
        (b"gzip;q=abc, br", BOTH, "br"),
        (b",,, ,gzip,", BOTH, "gzip"),
        (b"gzip;q=0, gzip;q=1", BOTH, None),  # the first weight for a coding wins
    ],
)
def test_negotiate(header: bytes | None, available: tuple[str, ...], expected: str | None) -> None:
    assert negotiate(header, available) == expected


def test_negotiate_takes_str_too() -> None:
    assert negotiate("gzip", GZIP_ONLY) == "gzip"


def test_negotiation_cache_is_bounded() -> None:
    first = negotiate(b"gzip;q=0.5, br", GZIP_ONLY)
    for index in range(300):
        assert negotiate(f"gzip;q=0.{index % 9 + 1}, x{index}".encode(), GZIP_ONLY) == "gzip"
    assert negotiate.cache_info().currsize <= 256
    # A cached answer is the same answer.
    assert negotiate(b"gzip;q=0.5, br", GZIP_ONLY) == first == "gzip"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_negotiate_never_raises(header: bytes) -> None:
    assert negotiate(header, BOTH) in (None, "br", "gzip")


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        (None, "Accept-Encoding"),
        ("", "Accept-Encoding"),
        (" , ", "Accept-Encoding"),
        ("Cookie", "Cookie, Accept-Encoding"),
        ("Cookie, ", "Cookie, Accept-Encoding"),
        ("accept-encoding", None),
        ("Cookie, Accept-Encoding", None),
        ("*", None),
    ],
)
def test_merge_vary(existing: str | None, expected: str | None) -> None:
    assert merge_vary(existing) == expected


@pytest.mark.parametrize(
    ("etag", "expected"),
    [(None, None), ('"abc"', 'W/"abc"'), (' "abc" ', 'W/"abc"'), ('W/"abc"', None), ("x", None)],
)
def test_weaken_etag(etag: str | None, expected: str | None) -> None:
    assert weaken_etag(etag) == expected


def _plan(facts: ResponseFacts, method: str = "GET", coding: str | None = "gzip") -> Plan:
    return plan_response(facts, method=method, coding=coding, minimum_size=500)


VARY = "Accept-Encoding"


@pytest.mark.parametrize(
    ("facts", "method", "coding", "expected"),
    [
        # Compressed: a Content-Length at or over the minimum.
        (ResponseFacts(200, "text/html", content_length="500"), "GET", "gzip", Action.COMPRESS),
        (ResponseFacts(404, "text/html", content_length="9000"), "GET", "br", Action.COMPRESS),
        # No size known: wait for the first body chunk.
        (ResponseFacts(200, "text/html"), "GET", "gzip", Action.WAIT),
        (ResponseFacts(200), "GET", "gzip", Action.WAIT),
        # Sent as is, with Vary: the client takes no coding, HEAD, 304, small.
        (ResponseFacts(200, "text/html", content_length="9000"), "GET", None, Action.IDENTITY),
        (ResponseFacts(200, "text/html", content_length="9000"), "HEAD", "gzip", Action.IDENTITY),
        (ResponseFacts(304, "text/html"), "GET", "gzip", Action.IDENTITY),
        (ResponseFacts(200, "text/html", content_length="499"), "GET", "gzip", Action.IDENTITY),
        # Left alone.
        (ResponseFacts(204), "GET", "gzip", Action.SKIP),
        (ResponseFacts(101), "GET", "gzip", Action.SKIP),
        (ResponseFacts(206, "text/html"), "GET", "gzip", Action.SKIP),
        (ResponseFacts(200, "text/html", content_range="bytes 0-9/99"), "GET", "gzip", Action.SKIP),
        (ResponseFacts(200, "text/html", content_encoding="gzip"), "GET", "gzip", Action.SKIP),
        (ResponseFacts(200, "text/html", content_encoding="br"), "GET", None, Action.SKIP),
        (ResponseFacts(200, "text/event-stream"), "GET", "gzip", Action.SKIP),
        (ResponseFacts(200, "Text/Event-Stream; charset=utf-8"), "GET", "gzip", Action.SKIP),
        (ResponseFacts(200, "image/png"), "GET", "gzip", Action.SKIP),
        (ResponseFacts(200, "video/mp4"), "GET", "gzip", Action.SKIP),
        (ResponseFacts(200, "text/html", cache_control="public, no-transform"), "GET", "gzip",
         Action.SKIP),
        (ResponseFacts(200, "text/html", content_length="12x"), "GET", "gzip", Action.SKIP),
        (ResponseFacts(200, "text/html", trailers=True), "GET", "gzip", Action.SKIP),
    ],
)  # fmt: skip
def test_plan_actions(
    facts: ResponseFacts, method: str, coding: str | None, expected: Action
) -> None:
    plan = _plan(facts, method, coding)
    assert plan.action is expected
    if expected is Action.SKIP:
        assert plan == Plan(Action.SKIP)  # nothing to change, not even Vary
    else:
        assert plan.vary == VARY


def test_identity_content_encoding_is_not_an_encoding() -> None:
    facts = ResponseFacts(200, "text/html", content_encoding="identity", content_length="900")
    assert _plan(facts).action is Action.COMPRESS


def test_plan_carries_coding_vary_and_weak_etag() -> None:
    facts = ResponseFacts(200, "text/html", content_length="900", vary="Cookie", etag='"v1"')
    assert _plan(facts, coding="br") == Plan(
        Action.COMPRESS, "br", "Cookie, Accept-Encoding", 'W/"v1"'
    )


def test_plan_keeps_vary_that_already_names_accept_encoding() -> None:
    facts = ResponseFacts(200, "text/html", vary="Accept-Encoding")
    assert _plan(facts, coding=None) == Plan(Action.IDENTITY, vary=None)


def test_wait_for_body_defers_even_a_known_size() -> None:
    facts = ResponseFacts(200, "text/html", content_length="900")
    plan = plan_response(facts, method="GET", coding="gzip", minimum_size=500, wait_for_body=True)
    assert plan.action is Action.WAIT


def test_excluded_types_can_be_replaced() -> None:
    facts = ResponseFacts(200, "image/png", content_length="900")
    plan = plan_response(
        facts, method="GET", coding="gzip", minimum_size=0, excluded_types=frozenset()
    )
    assert plan.action is Action.COMPRESS
    assert "text/event-stream" in DEFAULT_EXCLUDED_TYPES


@pytest.mark.parametrize(
    ("size", "complete", "expected"),
    [(499, True, False), (500, True, True), (0, False, True), (10, False, True)],
)
def test_compresses_at(size: int, complete: bool, expected: bool) -> None:
    assert compresses_at(size, complete=complete, minimum_size=500) is expected


def test_media_type_cache_is_bounded() -> None:
    for index in range(300):
        facts = ResponseFacts(200, f"text/html; v={index}", content_length="900")
        assert _plan(facts).action is Action.COMPRESS
    assert gzip_decision._excluded.cache_info().currsize <= 256
    # Answers come from the cache the same as computed.
    assert _plan(ResponseFacts(200, "text/html; v=0", content_length="900")).action is (
        Action.COMPRESS
    )
    assert _plan(ResponseFacts(200, "image/png")).action is Action.SKIP


@pytest.mark.parametrize(
    ("headers", "status", "facts"),
    [
        # ASGI's byte pairs and WSGI's string pairs give the same facts, names in any case.
        (
            [(b"content-type", b"text/html"), (b"etag", b'"x"'), (b"x-other", b"1")],
            200,
            ResponseFacts(200, "text/html", etag='"x"'),
        ),
        (
            [("Content-Type", "text/html"), ("ETag", '"x"'), ("X-Other", "1")],
            200,
            ResponseFacts(200, "text/html", etag='"x"'),
        ),
        # A repeated field is one list (RFC 9110 section 5.3).
        ([("Vary", "Cookie"), ("vary", "Origin")], 404, ResponseFacts(404, vary="Cookie, Origin")),
        (
            [(b"content-length", b"5"), (b"content-length", b"5")],
            200,
            ResponseFacts(200, content_length="5, 5"),
        ),
    ],
)
def test_response_facts(headers: list[tuple[str, str]], status: int, facts: ResponseFacts) -> None:
    assert response_facts(status, headers) == facts


PLAN = Plan(Action.COMPRESS, "gzip", vary="Cookie, Accept-Encoding", etag='W/"x"')


@pytest.mark.parametrize(
    ("coding", "length", "expected"),
    [
        (
            "gzip",
            12,
            [
                ("Content-Type", "text/html"),
                ("Vary", "Cookie, Accept-Encoding"),
                ("Content-Encoding", "gzip"),
                ("ETag", 'W/"x"'),
                ("Content-Length", "12"),
            ],
        ),
        # Not compressed: only Vary changes.
        (
            None,
            None,
            [
                ("Content-Type", "text/html"),
                ("Content-Length", "900"),
                ("Accept-Ranges", "bytes"),
                ("ETag", '"x"'),
                ("Vary", "Cookie, Accept-Encoding"),
            ],
        ),
    ],
)
def test_planned_headers_both_forms(
    coding: str | None, length: int | None, expected: list[tuple[str, str]]
) -> None:
    wsgi = [
        ("Content-Type", "text/html"),
        ("Content-Length", "900"),
        ("Accept-Ranges", "bytes"),
        ("ETag", '"x"'),
        ("Vary", "Cookie"),
    ]
    assert planned_headers(wsgi, PLAN, coding, length, lambda n, v: (n, v)) == expected
    asgi = [(n.lower().encode(), v.encode()) for n, v in wsgi]

    def pair(name: str, value: str) -> tuple[bytes, bytes]:
        return name.lower().encode(), value.encode()

    assert planned_headers(asgi, PLAN, coding, length, pair) == [pair(n, v) for n, v in expected]
