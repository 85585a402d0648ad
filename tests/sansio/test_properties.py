"""Hypothesis properties of the sans-IO layer (the pattern of h2's ``test_invalid_headers.py``).

Each property is "a correct result, or the library's own ``ProtocolError``; never anything else":
a ``KeyError`` or ``UnicodeError`` escaping from a translation function becomes an unexplained 500
(or a dropped connection) in the adapter, instead of the 4xx or 500 the error would carry.
"""

from __future__ import annotations

import io
import warnings
import wsgiref.validate
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from hypothesis import example, given, settings
from hypothesis import strategies as st

from crossgate.exceptions import AppProtocolError, PeerProtocolError, ProtocolError
from crossgate.sansio.environ import EnvironOptions, build_environ
from crossgate.sansio.headers import encode_response_headers, environ_headers
from crossgate.sansio.response import parse_status

PROPERTY = settings(max_examples=200, deadline=None)

# typeshed declares only wsgiref.validate.validator; check_environ is the part of it that checks
# an environ, called directly so that a failure names the broken rule.
check_environ: Callable[[dict[str, Any]], None] = vars(wsgiref.validate)["check_environ"]

# Stands for "the server left this key out of the scope"; dropped by `scopes`.
_ABSENT = object()

# The methods wsgiref.validate.check_environ knows; any other makes it warn "Unknown
# REQUEST_METHOD" (WSGIWarning, an error under filterwarnings=error). The environ property uses
# only these; the crash property uses arbitrary method strings, which build_environ passes through.
KNOWN_METHODS = ("GET", "HEAD", "POST", "OPTIONS", "PATCH", "PUT", "DELETE", "TRACE")
known_methods = st.sampled_from(KNOWN_METHODS)

# RFC 9110 section 5.6.2 token characters, lower case as ASGI header names are.
_TOKEN_LOWER = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"

# Path pieces that make interesting combinations likelier than uniform bytes would: escapes
# (valid, invalid, of "/" and of UTF-8), a query separator, a root-path lookalike, raw non-ASCII.
_RAW_PIECES = [b"/", b"app", b"%", b"%FF", b"%2F", b"%2f", b"%C3%A9", b"%zz", b"?", b"\xff", b".."]

header_names = st.one_of(
    st.sampled_from(
        [
            b"host",
            b"content-type",
            b"content-length",
            b"cookie",
            b"x-forwarded-for",
            b"x_forwarded_for",
            b"content_type",
            b"content_length",
        ]
    ),
    st.text(alphabet=_TOKEN_LOWER, min_size=1, max_size=16).map(str.encode),
)
header_values = st.one_of(
    st.binary(max_size=24),
    st.integers(min_value=0, max_value=10**12).map(lambda n: str(n).encode()),
)
header_lists = st.lists(st.tuples(header_names, header_values), max_size=12)
# Header lists over the default cap of 100, so the 431 path is part of the properties.
long_header_lists = st.lists(st.tuples(header_names, header_values), min_size=95, max_size=110)

raw_paths = st.one_of(
    st.binary(max_size=24).map(lambda b: b"/" + b),
    st.lists(st.one_of(st.sampled_from(_RAW_PIECES), st.binary(max_size=3)), max_size=8).map(
        lambda parts: b"/" + b"".join(parts)
    ),
)
# Valid Unicode only: the ASGI spec defines path and root_path as strings decoded from UTF-8,
# so a conformant server cannot produce lone surrogates (those are probed separately below).
unicode_paths = st.text(max_size=16).map(lambda t: "/" + t)
root_paths = st.one_of(
    st.sampled_from(["", "/", "/app", "/app/", "/caf\xe9", "/app/app"]),
    unicode_paths,
)
hosts = st.one_of(st.sampled_from(["127.0.0.1", "::1", "example.com"]), st.text(max_size=12))
ports = st.integers(min_value=0, max_value=65535)
servers = st.one_of(
    st.just(_ABSENT),
    st.none(),
    st.tuples(hosts, ports),
    # A Unix socket (ASGI spec: server is (path, None)).
    st.tuples(st.text(min_size=1, max_size=12).map(lambda t: "/" + t), st.none()),
)
clients = st.one_of(st.just(_ABSENT), st.none(), st.tuples(hosts, ports))


@st.composite
def scopes(
    draw: st.DrawFn,
    methods: st.SearchStrategy[str] = known_methods,
    paths: st.SearchStrategy[str] = unicode_paths,
    roots: st.SearchStrategy[str] = root_paths,
    headers: st.SearchStrategy[list[tuple[bytes, bytes]]] = header_lists,
) -> dict[str, Any]:
    """An ASGI HTTP scope; optional keys are sometimes left out, as servers may."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "method": draw(methods),
        "path": draw(paths),
        "http_version": draw(st.sampled_from(["1.0", "1.1", "2", _ABSENT])),
        "scheme": draw(st.sampled_from(["http", "https", _ABSENT])),
        "raw_path": draw(st.one_of(st.just(_ABSENT), st.none(), raw_paths)),
        "root_path": draw(st.one_of(st.just(_ABSENT), roots)),
        "query_string": draw(st.one_of(st.just(_ABSENT), st.binary(max_size=24))),
        "headers": draw(st.one_of(st.just(_ABSENT), headers)),
        "client": draw(clients),
        "server": draw(servers),
    }
    return {key: value for key, value in scope.items() if value is not _ABSENT}


# keep_underscore_headers stays at its default here; the opt-in has its own property below, so a
# failure there does not hide failures of the default configuration.
environ_options = st.builds(
    EnvironOptions,
    keep_underscore_headers=st.just(False),
    max_headers=st.one_of(st.just(100), st.none(), st.integers(min_value=0, max_value=20)),
    multiprocess=st.booleans(),
    run_once=st.booleans(),
)


def _complete(environ: dict[str, Any]) -> dict[str, Any]:
    """Add the stream objects the adapter adds (PEP 3333 requires them in every environ)."""
    environ["wsgi.input"] = io.BytesIO()
    environ["wsgi.errors"] = io.StringIO()
    return environ


# --- build_environ ----------------------------------------------------------------------------


@PROPERTY
@given(
    scope=st.one_of(
        scopes(methods=st.text(max_size=10)),
        scopes(methods=st.text(max_size=10), headers=long_header_lists),
    ),
    options=environ_options,
)
def test_build_environ_returns_or_raises_protocol_error(
    scope: dict[str, Any], options: EnvironOptions
) -> None:
    try:
        environ = build_environ(scope, options)
    except ProtocolError:
        return
    assert type(environ) is dict


@PROPERTY
@given(scope=scopes(), options=environ_options)
def test_environ_passes_wsgiref_validate(scope: dict[str, Any], options: EnvironOptions) -> None:
    try:
        environ = build_environ(scope, options)
    except PeerProtocolError:
        return
    # check_environ asserts PEP 3333's rules and warns (WSGIWarning) about softer ones; both
    # count as failures here.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_environ(_complete(environ))


@PROPERTY
@given(scope=scopes(headers=st.lists(st.tuples(header_names, header_values), max_size=6)))
@example(scope={"type": "http", "method": "GET", "path": "/", "headers": [(b"content_type", b"")]})
def test_environ_with_underscore_headers_kept_passes_wsgiref_validate(
    scope: dict[str, Any],
) -> None:
    # keep_underscore_headers is an operator's opt-in, but the environ must still be a valid
    # one: PEP 3333 / CGI (RFC 3875 4.1.18) have CONTENT_TYPE and CONTENT_LENGTH, and
    # wsgiref.validate rejects HTTP_CONTENT_TYPE / HTTP_CONTENT_LENGTH beside them.
    try:
        environ = build_environ(scope, EnvironOptions(keep_underscore_headers=True))
    except PeerProtocolError:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_environ(_complete(environ))


@PROPERTY
@given(
    root_path=root_paths,
    raw_path=raw_paths,
    query=st.binary(max_size=12),
)
def test_script_name_and_path_info_rebuild_the_decoded_path(
    root_path: str, raw_path: bytes, query: bytes
) -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "raw_path": raw_path,
        "root_path": root_path,
        "query_string": query,
    }
    environ = build_environ(scope)
    decoded = unquote_to_bytes(raw_path.partition(b"?")[0])
    script_name = environ["SCRIPT_NAME"].encode("latin-1")
    path_info = environ["PATH_INFO"].encode("latin-1")
    assert script_name == root_path.rstrip("/").encode("utf-8")
    # PEP 3333, "URL Reconstruction": SCRIPT_NAME + PATH_INFO is the decoded path when the
    # path lies under the root at a segment boundary; otherwise (an older server's path, root
    # not included) PATH_INFO is all of it.
    rest = decoded[len(script_name) :]
    under_root = bool(script_name) and decoded.startswith(script_name) and rest[:1] in (b"", b"/")
    assert path_info == (rest if under_root else decoded)
    assert environ["QUERY_STRING"].encode("latin-1") == query


# Any code point, lone surrogates included: not valid Unicode, so no conformant server sends
# them, but a str can hold them (e.g. after a surrogateescape decode), and build_environ
# itself encodes `path` with "surrogateescape". Whatever it cannot encode must surface as a
# ProtocolError rather than a UnicodeEncodeError.
_any_code_point = st.one_of(st.characters(), st.characters(categories=["Cs"]))
# (st.lists + join, not st.text: text() with a one_of alphabet leaves the surrogates out.)
surrogate_paths = st.lists(_any_code_point, max_size=8).map(lambda cs: "/" + "".join(cs))


@PROPERTY
@given(
    scope=scopes(
        paths=surrogate_paths,
        roots=st.one_of(st.just(""), surrogate_paths),
        headers=st.just([]),
        # raw_path None, so that build_environ has to encode `path` itself.
    ).map(lambda scope: {**scope, "raw_path": None}),
)
@example(scope={"type": "http", "method": "GET", "path": "/\ud800"})
# U+DCFF is what surrogateescape makes of byte 0xFF: `path` accepts it, `root_path` does not.
@example(scope={"type": "http", "method": "GET", "path": "/\udcff/x", "root_path": "/\udcff"})
def test_build_environ_with_lone_surrogates_raises_only_protocol_error(
    scope: dict[str, Any],
) -> None:
    try:
        environ = build_environ(scope)
    except ProtocolError:
        return
    assert type(environ) is dict


# --- environ_headers ---------------------------------------------------------------------------


@PROPERTY
@given(
    headers=st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=12)), max_size=30),
    keep_underscores=st.booleans(),
    max_headers=st.one_of(st.none(), st.integers(min_value=0, max_value=40)),
)
def test_environ_headers_returns_str_values_or_raises_peer_error(
    headers: list[tuple[bytes, bytes]], keep_underscores: bool, max_headers: int | None
) -> None:
    error: PeerProtocolError | None = None
    try:
        result = environ_headers(
            headers, keep_underscores=keep_underscores, max_headers=max_headers
        )
    except PeerProtocolError as exc:
        error = exc
    if error is not None:
        assert error.status_code in (400, 431)
        return
    assert all(type(key) is str and type(value) is str for key, value in result.items())
    # Every value is made of the latin-1 decoded bytes of the lines that produced it.
    sent = b"".join(value for _, value in headers)
    for value in result.values():
        for part in value.replace("; ", ", ").split(", "):
            assert part.encode("latin-1") in sent


# --- response side -----------------------------------------------------------------------------

_atoms = st.one_of(
    st.text(max_size=8),
    st.text(alphabet=_TOKEN_LOWER + "ABCXYZ", min_size=1, max_size=8),
    st.binary(max_size=4),
    st.integers(),
    st.none(),
)
# Valid pairs: token names, values of latin-1 characters (spaces and tabs at the edges too)
# without CR, LF or NUL. Lists made only of these exercise the success path, which lists of
# random items (one bad item spoils the list) would almost never reach. (st.lists + join, not
# st.text: text() with a one_of alphabet did not produce the spaces and tabs.)
_valid_pairs = st.tuples(
    st.text(alphabet=_TOKEN_LOWER + "ABCXYZ", min_size=1, max_size=8),
    st.lists(
        st.one_of(
            st.characters(max_codepoint=0xFF, exclude_characters="\r\n\x00"),
            st.sampled_from(" \t"),
        ),
        max_size=8,
    ).map("".join),
)
_items = st.one_of(
    _valid_pairs,
    st.tuples(_atoms, _atoms),
    # Almost valid: any code point in the value (CR, LF, NUL, beyond latin-1).
    st.tuples(
        st.text(alphabet=_TOKEN_LOWER + "ABCXYZ", min_size=1, max_size=8),
        st.text(max_size=8),
    ),
    st.lists(_atoms, max_size=3),
    st.tuples(_atoms),
    _atoms,
)
response_headers = st.one_of(
    st.lists(_valid_pairs, max_size=6),
    st.lists(_items, max_size=6),
    st.lists(_items, max_size=6).map(tuple),
    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3),
    _atoms,
)


@PROPERTY
@given(headers=response_headers)
def test_encode_response_headers_returns_or_raises_app_error(headers: object) -> None:
    try:
        encoded = encode_response_headers(headers)
    except AppProtocolError:
        return
    assert isinstance(headers, list | tuple)
    assert len(encoded) == len(headers)
    for (name, value), (raw_name, raw_value) in zip(encoded, headers, strict=True):
        # ASGI wants lower-case byte names; the values are the latin-1 bytes of the strings,
        # without the whitespace at their edges (RFC 9110 section 5.5: not part of the value).
        assert name == raw_name.lower().encode("ascii")
        assert value == raw_value.strip(" \t").encode("latin-1")
        assert b"\r" not in value
        assert b"\n" not in value
        assert b"\x00" not in value


@PROPERTY
@given(
    status=st.one_of(
        st.text(max_size=12),
        st.from_regex(r"[0-9]{3} [^\r\n]{0,10}", fullmatch=True),
        st.integers(),
        st.binary(max_size=8),
        st.none(),
    )
)
def test_parse_status_returns_final_code_or_raises_app_error(status: object) -> None:
    try:
        code = parse_status(status)
    except AppProtocolError:
        return
    assert isinstance(status, str)
    assert 200 <= code <= 599
    assert status[:3] == str(code)
    assert status[3] == " "
    assert not {"\r", "\n", "\x00"} & set(status)
