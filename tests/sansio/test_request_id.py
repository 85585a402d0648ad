"""``crossgate.sansio.request_id``: which incoming ids are reused, new ids, the access line."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossgate.sansio.request_id import (
    DEFAULT_MAX_ID_LENGTH,
    accept_request_id,
    access_line,
    asgi_target,
    log_safe,
    new_request_id,
    wsgi_target,
)


@pytest.mark.parametrize(
    "value",
    [
        b"abc",
        b"4f0c2e1d9b7a46c8a1e2f3a4b5c6d7e8",
        b"123e4567-e89b-12d3-a456-426614174000",
        b"Root=1-5759e988-bd862e3fe1be46a994272793",  # AWS X-Ray
        b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # W3C traceparent
        b"dGVzdA==",  # base64
        b"a.b_c:d+e/f=g@h~i",
        b"x" * DEFAULT_MAX_ID_LENGTH,
        "abc",
    ],
)
def test_safe_ids_are_reused(value: bytes | str) -> None:
    expected = value.decode() if isinstance(value, bytes) else value
    assert accept_request_id(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"abc\r\nSet-Cookie: x=1",  # header injection
        b"abc\n",
        b"abc\r",
        b"a\x00b",
        b"a\x1bb",  # an ANSI escape for a terminal reading the log
        b"a\x7fb",
        b"a b",
        b'a"b',  # would end the quoted field of an access line
        b"a\\b",
        b"a,b",
        b"a;b",
        "caf\u00e9".encode(),
        b"caf\xe9",  # latin-1 non-ASCII
        "caf\u00e9",
        b"x" * (DEFAULT_MAX_ID_LENGTH + 1),
        "x" * (DEFAULT_MAX_ID_LENGTH + 1),
    ],
)
def test_unsafe_ids_are_refused(value: bytes | str | None) -> None:
    assert accept_request_id(value) is None


def test_max_length_is_configurable() -> None:
    assert accept_request_id(b"abcd", max_length=4) == "abcd"
    assert accept_request_id(b"abcde", max_length=4) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_accepted_ids_are_always_safe(value: bytes) -> None:
    accepted = accept_request_id(value)
    if accepted is not None:
        assert 1 <= len(accepted) <= DEFAULT_MAX_ID_LENGTH
        assert accepted.isascii()
        assert accepted.isprintable()
        assert not set(accepted) & set(' "\\\r\n\t,;')


def test_new_ids_are_unique_hex() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert all(accept_request_id(i) == i for i in ids)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/plain/path", "/plain/path"),
        ("/a\r\nINFO forged line", "/a\\x0d\\x0aINFO forged line"),
        ('/a" 200 0', '/a\\" 200 0'),
        ("/back\\slash", "/back\\\\slash"),
        ("/caf\u00e9", "/caf\\xe9"),
        ("/snow\u2603", "/snow\\u2603"),
        ("/tab\there", "/tab\\x09here"),
        ("/del\x7f", "/del\\x7f"),
    ],
)
def test_log_safe(text: str, expected: str) -> None:
    assert log_safe(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=100))
def test_log_safe_output_is_one_printable_ascii_line(text: str) -> None:
    escaped = log_safe(text)
    assert escaped.isascii()
    assert escaped.isprintable()
    assert '"' not in escaped.replace('\\"', "")


@pytest.mark.parametrize(
    ("script_name", "path_info", "expected"),
    [
        ("", "/", "/"),
        ("/app", "/x", "/app/x"),
        ("", "/caf\u00c3\u00a9", "/caf%C3%A9"),  # UTF-8 bytes carried as latin-1 (PEP 3333)
        ("", "/a b", "/a%20b"),
        ("", "/100%", "/100%25"),  # a decoded "%" was "%25" on the wire
        ("", "/a\r\n", "/a%0D%0A"),
        ("", "/a:b@c;d=e,f", "/a:b@c;d=e,f"),
        ("", "/\u2603", "/%5Cu2603"),  # not latin-1 (a broken server): escaped, never fatal
    ],
)
def test_wsgi_target(script_name: str, path_info: str, expected: str) -> None:
    assert wsgi_target(script_name, path_info) == expected


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        (b"/items/7", "/items/7"),
        (b"/caf%C3%A9/a%20b", "/caf%C3%A9/a%20b"),  # escapes as sent are kept
        (b"/caf\xc3\xa9/a b", "/caf%C3%A9/a%20b"),  # raw bytes escaped the same way
        (b'/a\r\n"', "/a%0D%0A%22"),
        (b"/a:b@c;d=e,f~g", "/a:b@c;d=e,f~g"),
    ],
)
def test_asgi_target(raw_path: bytes, expected: str) -> None:
    assert asgi_target(raw_path) == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60))
def test_asgi_target_fast_path_agrees_with_quote(raw_path: bytes) -> None:
    target = asgi_target(raw_path)
    assert target == quote(raw_path, safe="/:@!$&'()*+,;=%")
    assert target.isascii()
    assert target.isprintable()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=60))
def test_wsgi_target_fast_path_agrees_with_quote(path: str) -> None:
    assert wsgi_target("", path) == quote(path.encode("latin-1"), safe="/:@!$&'()*+,;=")


def test_both_targets_agree() -> None:
    # The same request logs the same path on both sides.
    assert asgi_target("/caf\u00e9 x".encode()) == wsgi_target("", "/caf\u00c3\u00a9 x")


def _line(
    *,
    client: str | None = "127.0.0.1:50000",
    method: str = "GET",
    path: str = "/items",
    query: str = "page=2",
    http_version: str = "1.1",
    status: int = 200,
    sent: int = 1234,
    outcome: str = "",
) -> str:
    return access_line(
        client=client,
        method=method,
        path=path,
        query=query,
        http_version=http_version,
        status=status,
        sent=sent,
        duration_ms=3.14159,
        request_id="abc",
        outcome=outcome,
    )


def test_access_line() -> None:
    assert _line() == '127.0.0.1:50000 - "GET /items?page=2 HTTP/1.1" 200 1234 3.14ms id=abc'


def test_access_line_variants() -> None:
    assert _line(client=None, query="").startswith('- - "GET /items HTTP/1.1"')
    assert _line(outcome="client disconnected").endswith("id=abc (client disconnected)")
    assert _line(status=500, sent=0).split('" ')[1].startswith("500 0 ")


def test_access_line_escapes_what_the_client_sent() -> None:
    line = _line(path='/x"\r\nfake', query="a=\x00", method="G\nET", http_version="1.1\n")
    assert "\n" not in line
    assert "\r" not in line
    assert "\x00" not in line
    assert line.count('"') - line.count('\\"') == 2
