"""ASGI HTTP scope -> PEP 3333 environ (``crossgate.sansio.environ``), table-driven.

Scopes are written out by hand here rather than built with :func:`crossgate.testing.http_scope`,
so that each test controls exactly which keys the "server" sent (``raw_path`` present, absent or
``None``; ``server`` missing; no ``Host`` header ...).
"""

from __future__ import annotations

from typing import Any, Final

import pytest

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio.environ import EnvironOptions, build_environ, split_script_name

# A marker for "the server did not send this key at all", as opposed to sending ``None``.
MISSING: Final = object()


def make_scope(**fields: object) -> dict[str, Any]:
    """An HTTP scope as a current server sends it; ``MISSING`` removes a key.

    ``raw_path`` defaults to ``path`` encoded as UTF-8, as the ASGI spec (HTTP connection
    scope, ``raw_path``) describes it for a request without percent-escapes.
    """
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.5"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    scope.update(fields)
    if "raw_path" not in fields and isinstance(scope["path"], str):
        scope["raw_path"] = str(scope["path"]).encode("utf-8")
    return {key: value for key, value in scope.items() if value is not MISSING}


# --- PATH_INFO, RAW_URI and REQUEST_URI -------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_path", "path", "path_info"),
    [
        # PEP 3333, "Unicode Issues": environ strings carry bytes as latin-1 code points, so a
        # percent-escape of an invalid UTF-8 byte survives as the single code point U+00FF ...
        (b"/a%FFb", "/a\ufffdb", "/a\xffb"),
        # ... and a UTF-8 sequence arrives as its bytes, one latin-1 character each.
        (b"/caf%C3%A9", "/caf\xe9", "/caf\xc3\xa9"),
        (b"/caf\xc3\xa9", "/caf\xe9", "/caf\xc3\xa9"),
        # CGI (RFC 3875 section 4.1.5) and every WSGI server decode PATH_INFO, %2F included.
        (b"/a%2Fb", "/a/b", "/a/b"),
        (b"/a%20b", "/a b", "/a b"),
        (b"/", "/", "/"),
        # ASGI spec, HTTP scope: raw_path excludes the query, but some servers include it.
        (b"/x?y=1", "/x", "/x"),
        (b"/x?", "/x", "/x"),
        # raw_path is what the client sent, so it wins over a path that disagrees with it.
        (b"/right", "/wrong", "/right"),
    ],
)
def test_path_info_from_raw_path(raw_path: bytes, path: str, path_info: str) -> None:
    environ = build_environ(make_scope(path=path, raw_path=raw_path))
    assert environ["PATH_INFO"] == path_info


@pytest.mark.parametrize("raw_path", [MISSING, None])
@pytest.mark.parametrize(
    ("path", "path_info"),
    [
        ("/", "/"),
        ("/plain", "/plain"),
        # Without raw_path the decoded path is all there is: its UTF-8 bytes, as latin-1.
        ("/caf\xe9", "/caf\xc3\xa9"),
        ("/\u20ac/\U0001f600", "/\xe2\x82\xac/\xf0\x9f\x98\x80"),
        ("/a b", "/a b"),
    ],
)
def test_path_info_from_path_without_raw_path(raw_path: object, path: str, path_info: str) -> None:
    environ = build_environ(make_scope(path=path, raw_path=raw_path))
    assert environ["PATH_INFO"] == path_info


@pytest.mark.parametrize(
    ("raw_path", "query_string", "request_uri"),
    [
        (b"/a%FFb", b"", "/a%FFb"),
        (b"/a%FFb", b"x=1", "/a%FFb?x=1"),
        (b"/caf\xc3\xa9", b"", "/caf\xc3\xa9"),
        # A server that left the query in raw_path must not get it twice.
        (b"/x?y=1", b"y=1", "/x?y=1"),
        (b"/x", b"q=%FF&r=\xff", "/x?q=%FF&r=\xff"),
    ],
)
def test_raw_uri_keeps_the_raw_target(
    raw_path: bytes, query_string: bytes, request_uri: str
) -> None:
    environ = build_environ(make_scope(raw_path=raw_path, query_string=query_string))
    # RAW_URI (gunicorn) and REQUEST_URI (Apache, uWSGI) are the undecoded request target.
    assert environ["RAW_URI"] == request_uri
    assert environ["REQUEST_URI"] == request_uri


@pytest.mark.parametrize(
    ("path", "query_string", "request_uri"),
    [
        ("/caf\xe9", b"", "/caf%C3%A9"),
        ("/a b", b"x=1", "/a%20b?x=1"),
    ],
)
def test_raw_uri_is_re_encoded_without_raw_path(
    path: str, query_string: bytes, request_uri: str
) -> None:
    environ = build_environ(make_scope(path=path, raw_path=MISSING, query_string=query_string))
    assert environ["RAW_URI"] == request_uri
    assert environ["REQUEST_URI"] == request_uri


# --- root_path -> SCRIPT_NAME ------------------------------------------------------------------

ROOT_PATH_CASES = [
    # (root_path, path as the current ASGI spec sends it (root included), SCRIPT_NAME, PATH_INFO)
    ("/app", "/app/x", "/app", "/x"),
    ("/app", "/app", "/app", ""),
    ("/app", "/app/", "/app", "/"),
    # Only at a segment boundary: "/application" is not under "/app".
    ("/app", "/application", "/app", "/application"),
    ("/a/b", "/a/b/c", "/a/b", "/c"),
    ("/a/b", "/a/bc", "/a/b", "/a/bc"),
    # PEP 3333: SCRIPT_NAME never ends with "/" (the slash belongs to PATH_INFO).
    ("/app/", "/app/x", "/app", "/x"),
    ("/", "/x", "", "/x"),
    ("", "/x", "", "/x"),
    # Non-ASCII root: its UTF-8 bytes, carried as latin-1 like every environ string.
    ("/caf\xe9", "/caf\xe9/x", "/caf\xc3\xa9", "/x"),
    ("/my app", "/my app/x", "/my app", "/x"),
    # Servers from before the ASGI spec said path includes root_path: path is kept whole.
    ("/app", "/x", "/app", "/x"),
    ("/app", "/", "/app", "/"),
]


@pytest.mark.parametrize(("root_path", "path", "script_name", "path_info"), ROOT_PATH_CASES)
def test_root_path_with_raw_path(
    root_path: str, path: str, script_name: str, path_info: str
) -> None:
    environ = build_environ(make_scope(root_path=root_path, path=path))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)


@pytest.mark.parametrize(("root_path", "path", "script_name", "path_info"), ROOT_PATH_CASES)
def test_root_path_without_raw_path(
    root_path: str, path: str, script_name: str, path_info: str
) -> None:
    environ = build_environ(make_scope(root_path=root_path, path=path, raw_path=None))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)


@pytest.mark.parametrize(
    ("root_path", "raw_path", "script_name", "path_info"),
    [
        # The root is compared with the percent-decoded raw_path, so escapes in the target
        # still match a decoded root_path.
        ("/caf\xe9", b"/caf%C3%A9/x", "/caf\xc3\xa9", "/x"),
        ("/my app", b"/my%20app/x", "/my app", "/x"),
        ("/app", b"/app%2Fx", "/app", "/x"),
        ("/app", b"/app/x?q=1", "/app", "/x"),
    ],
)
def test_root_path_against_escaped_raw_path(
    root_path: str, raw_path: bytes, script_name: str, path_info: str
) -> None:
    environ = build_environ(make_scope(root_path=root_path, raw_path=raw_path))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)


@pytest.mark.parametrize(
    ("root_path", "path", "raw_path", "script_name", "path_info"),
    [
        # A relative target, as build_scope keeps it from werkzeug's PATH_INFO "foo": path is
        # root_path + "/foo", raw_path "foo", and PATH_INFO gets "foo" back.
        ("/app", "/app/foo", b"foo", "/app", "foo"),
        ("", "/foo", b"foo", "", "foo"),
        ("/app", "/app/a b/x", b"a%20b/x", "/app", "a b/x"),
        ("/caf\xe9", "/caf\xe9/foo", b"foo", "/caf\xc3\xa9", "foo"),
        # A router mounted the app deeper since (root_path "/app/foo"): path decides.
        ("/app/foo", "/app/foo", b"foo", "/app/foo", ""),
        ("/app/foo", "/app/foo/x", b"foo/x", "/app/foo", "/x"),
        # OPTIONS *.
        ("", "*", b"*", "", "*"),
    ],
)
def test_relative_raw_path(
    root_path: str, path: str, raw_path: bytes, script_name: str, path_info: str
) -> None:
    environ = build_environ(make_scope(root_path=root_path, path=path, raw_path=raw_path))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)
    assert environ["RAW_URI"] == raw_path.decode("latin-1")


@pytest.mark.parametrize(
    ("root_path", "path", "expected"),
    [
        ("/app", b"/app/x", ("/app", b"/x")),
        ("/app", b"/application", ("/app", b"/application")),
        ("/app/", b"/app", ("/app", b"")),
        ("", b"/x", ("", b"/x")),
        ("///", b"/x", ("", b"/x")),
    ],
)
def test_split_script_name(root_path: str, path: bytes, expected: tuple[str, bytes]) -> None:
    assert split_script_name(root_path, path) == expected


def test_root_path_missing_from_scope() -> None:
    environ = build_environ(make_scope(root_path=MISSING, path="/x"))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("", "/x")


# --- SERVER_*, REMOTE_*, SERVER_PROTOCOL, scheme ---------------------------------------------


@pytest.mark.parametrize(
    ("server", "headers", "scheme", "name_and_port"),
    [
        (("10.0.0.1", 8080), [], "http", ("10.0.0.1", "8080")),
        (("::1", 443), [], "https", ("::1", "443")),
        # The socket the server listens on wins over what the client put in Host.
        (("10.0.0.1", 8080), [(b"host", b"example.com:9999")], "http", ("10.0.0.1", "8080")),
        # No `server` (the ASGI spec makes it optional): fall back to Host (RFC 9110 7.2).
        (MISSING, [(b"host", b"example.com:8000")], "http", ("example.com", "8000")),
        (MISSING, [(b"host", b"[::1]:8000")], "http", ("[::1]", "8000")),
        (MISSING, [(b"host", b"[::1]")], "https", ("[::1]", "443")),
        (MISSING, [(b"host", b"example.com")], "http", ("example.com", "80")),
        (MISSING, [(b"host", b"example.com")], "https", ("example.com", "443")),
        (None, [(b"host", b"example.com")], "https", ("example.com", "443")),
        # Neither: PEP 3333 still requires SERVER_NAME and SERVER_PORT.
        (MISSING, [], "http", ("localhost", "80")),
        (None, [], "https", ("localhost", "443")),
        # A Unix socket: the ASGI spec sends server as (path, None).
        (("/run/app.sock", None), [(b"host", b"example.com")], "http", ("example.com", "80")),
        (("/run/app.sock", None), [], "http", ("/run/app.sock", "80")),
        (("/run/app.sock", None), [], "https", ("/run/app.sock", "443")),
    ],
)
def test_server_name_and_port(
    server: object,
    headers: list[tuple[bytes, bytes]],
    scheme: str,
    name_and_port: tuple[str, str],
) -> None:
    environ = build_environ(make_scope(server=server, headers=headers, scheme=scheme))
    # PEP 3333 ("environ Variables"): CGI variables are native strings, the port included.
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == name_and_port
    assert type(environ["SERVER_PORT"]) is str


@pytest.mark.parametrize(
    ("client", "remote"),
    [
        (("203.0.113.5", 4444), ("203.0.113.5", "4444")),
        (("::1", 1), ("::1", "1")),
        (None, ("", "")),
        (MISSING, ("", "")),
    ],
)
def test_remote_addr_and_port(client: object, remote: tuple[str, str]) -> None:
    environ = build_environ(make_scope(client=client))
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == remote
    assert type(environ["REMOTE_PORT"]) is str


@pytest.mark.parametrize(
    ("http_version", "protocol"),
    [("1.0", "HTTP/1.0"), ("1.1", "HTTP/1.1"), ("2", "HTTP/2"), (MISSING, "HTTP/1.1")],
)
def test_server_protocol(http_version: object, protocol: str) -> None:
    assert build_environ(make_scope(http_version=http_version))["SERVER_PROTOCOL"] == protocol


@pytest.mark.parametrize(
    ("scheme", "url_scheme", "https"),
    [
        ("http", "http", "off"),
        ("https", "https", "on"),
        (MISSING, "http", "off"),
        ("ws", "http", "off"),
        ("wss", "https", "on"),
    ],
)
def test_url_scheme_and_https(scheme: object, url_scheme: str, https: str) -> None:
    environ = build_environ(make_scope(scheme=scheme))
    # PEP 3333 allows only "http" and "https" as wsgi.url_scheme.
    assert environ["wsgi.url_scheme"] == url_scheme
    assert environ["HTTPS"] == https


# --- QUERY_STRING, CONTENT_*, headers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("query_string", "expected"),
    [
        (b"", ""),
        (MISSING, ""),
        (b"a=1&b=2", "a=1&b=2"),
        # Not decoded (PEP 3333 / CGI leave that to the app), and raw bytes travel as latin-1.
        (b"a=%FF&b=\xff", "a=%FF&b=\xff"),
        (b"q=caf\xc3\xa9", "q=caf\xc3\xa9"),
    ],
)
def test_query_string(query_string: object, expected: str) -> None:
    assert build_environ(make_scope(query_string=query_string))["QUERY_STRING"] == expected


def test_content_type_and_length_have_no_http_prefix() -> None:
    scope = make_scope(
        method="POST",
        headers=[(b"content-type", b"text/plain"), (b"content-length", b"5"), (b"x-a", b"1")],
    )
    environ = build_environ(scope)
    # PEP 3333 / CGI (RFC 3875 4.1.2-3): these two are CGI variables, not HTTP_ ones.
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "5"
    assert environ["HTTP_X_A"] == "1"
    assert "HTTP_CONTENT_TYPE" not in environ
    assert "HTTP_CONTENT_LENGTH" not in environ


@pytest.mark.parametrize(
    ("options", "present"),
    [(EnvironOptions(), False), (EnvironOptions(keep_underscore_headers=True), True)],
)
def test_options_reach_the_header_translation(options: EnvironOptions, present: bool) -> None:
    environ = build_environ(make_scope(headers=[(b"x_under", b"v")]), options)
    assert ("HTTP_X_UNDER" in environ) is present


@pytest.mark.parametrize(("max_headers", "count"), [(2, 3), (0, 1), (100, 101)])
def test_too_many_headers_is_431(max_headers: int, count: int) -> None:
    scope = make_scope(headers=[(b"x-h", b"v")] * count)
    with pytest.raises(PeerProtocolError) as info:
        build_environ(scope, EnvironOptions(max_headers=max_headers))
    assert info.value.status_code == 431


def test_default_max_headers_applies() -> None:
    with pytest.raises(PeerProtocolError) as info:
        build_environ(make_scope(headers=[(b"x-h", b"v")] * 101))
    assert info.value.status_code == 431


# --- wsgi.* and asgi.* ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("multiprocess", "run_once"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_wsgi_keys(multiprocess: bool, run_once: bool) -> None:
    scope = make_scope()
    environ = build_environ(scope, EnvironOptions(multiprocess=multiprocess, run_once=run_once))
    assert environ["wsgi.version"] == (1, 0)
    assert type(environ["wsgi.version"]) is tuple
    # The adapter runs each request in a worker thread.
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is multiprocess
    assert environ["wsgi.run_once"] is run_once
    assert environ["wsgi.input_terminated"] is True
    # The very object the server passed, so the app can reach extensions and state.
    assert environ["asgi.scope"] is scope


def test_request_method_is_passed_through() -> None:
    assert build_environ(make_scope(method="PATCH"))["REQUEST_METHOD"] == "PATCH"


def test_cgi_values_are_native_strings() -> None:
    scope = make_scope(
        root_path="/app",
        path="/app/caf\xe9",
        query_string=b"a=\xff",
        headers=[(b"host", b"example.com"), (b"x-a", b"\xe9")],
    )
    environ = build_environ(scope)
    # PEP 3333: every key without a dot holds a str (wsgiref.validate.check_environ).
    for key, value in environ.items():
        if "." not in key:
            assert type(value) is str, key


@pytest.mark.parametrize(
    ("path", "root_path", "script_name", "path_info"),
    [
        # U+DC80-U+DCFF is what a surrogateescape decode makes of undecodable bytes; encoding
        # them back gives the bytes again, in path and root_path alike.
        ("/\udcff/x", "", "", "/\xff/x"),
        ("/\udcff/x", "/\udcff", "/\xff", "/x"),
    ],
)
def test_surrogate_escaped_bytes_are_restored(
    path: str, root_path: str, script_name: str, path_info: str
) -> None:
    environ = build_environ(make_scope(path=path, root_path=root_path, raw_path=None))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)


@pytest.mark.parametrize(
    ("path", "root_path"),
    [
        # Any other lone surrogate is not the decoding of any bytes: the scope is invalid, and
        # that is a 400, not a UnicodeEncodeError escaping from the adapter.
        ("/\ud800", ""),
        ("/a\udbff\udfffb\ud800", ""),
        ("/x", "/\ud800"),
    ],
)
def test_lone_surrogates_are_a_peer_error(path: str, root_path: str) -> None:
    with pytest.raises(PeerProtocolError) as info:
        build_environ(make_scope(path=path, root_path=root_path, raw_path=None))
    assert info.value.status_code == 400


@pytest.mark.parametrize("key", ["method", "path"])
def test_scope_without_required_key_is_rejected(key: str) -> None:
    with pytest.raises(PeerProtocolError) as info:
        build_environ(make_scope(**{key: MISSING}))
    assert info.value.status_code == 400
    assert repr(key) in str(info.value)
