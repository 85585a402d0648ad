"""PEP 3333 environ -> ASGI HTTP scope (``crossgate.sansio.scope``): tables and properties.

The properties follow h2's ``test_invalid_headers.py``: any environ gives a valid scope or a
``ProtocolError``, never anything else; a path that is not UTF-8 never raises; and the round
trip environ -> scope -> environ (through the foundation's `build_environ`) keeps every
PEP 3333 key.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crossgate.exceptions import PeerProtocolError, ProtocolError
from crossgate.sansio import scope as scope_module
from crossgate.sansio.environ import EnvironOptions, build_environ
from crossgate.sansio.scope import ASGI_SPEC_VERSION, build_scope, request_body_length

PROPERTY = settings(max_examples=300, deadline=None)

# Marks a key the "server" left out of the environ.
MISSING: Final = object()


def make_environ(**fields: object) -> dict[str, Any]:
    """The CGI part of an environ as gunicorn builds it for ``GET /`` (``MISSING`` removes)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "RAW_URI": "/",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.input_terminated": True,
    }
    environ.update(fields)
    return {key: value for key, value in environ.items() if value is not MISSING}


# --- path, raw_path and root_path ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "path", "raw_path"),
    [
        # gunicorn: RAW_URI is the target as sent (query included), PATH_INFO its decoded path.
        ({"RAW_URI": "/a%20b?x=1", "PATH_INFO": "/a b"}, "/a b", b"/a%20b"),
        ({"RAW_URI": "/a%2Fb", "PATH_INFO": "/a/b"}, "/a/b", b"/a%2Fb"),
        # PEP 3333 ("Unicode Issues"): PATH_INFO carries bytes as latin-1 code points; the
        # ASGI path is those bytes decoded from UTF-8.
        ({"RAW_URI": "/caf%C3%A9", "PATH_INFO": "/caf\xc3\xa9"}, "/caf\xe9", b"/caf%C3%A9"),
        # Bytes that are not UTF-8 never raise: surrogateescape keeps them apart.
        ({"RAW_URI": "/%FF", "PATH_INFO": "/\xff"}, "/\udcff", b"/%FF"),
        ({"RAW_URI": "/%C3", "PATH_INFO": "/\xc3"}, "/\udcc3", b"/%C3"),
        # mod_wsgi and others name it REQUEST_URI.
        ({"RAW_URI": MISSING, "REQUEST_URI": "/a%20b", "PATH_INFO": "/a b"}, "/a b", b"/a%20b"),
        # RFC 9112 section 3.2.2: absolute form, as sent to a proxy.
        ({"RAW_URI": "http://example.com/x%2Fy?q", "PATH_INFO": "/x/y"}, "/x/y", b"/x%2Fy"),
        ({"RAW_URI": "http://example.com", "PATH_INFO": ""}, "", b""),
        # A middleware rewrote PATH_INFO: RAW_URI no longer describes the request, so the raw
        # path is rebuilt from what the app will see.
        ({"RAW_URI": "/old", "PATH_INFO": "/new"}, "/new", b"/new"),
        # No raw target at all (wsgiref): rebuilt, percent-encoding what must be.
        ({"RAW_URI": MISSING, "PATH_INFO": "/a b/\xff"}, "/a b/\udcff", b"/a%20b/%FF"),
        ({"RAW_URI": MISSING, "PATH_INFO": "/%/?#"}, "/%/?#", b"/%25/%3F%23"),
        ({"RAW_URI": MISSING, "PATH_INFO": "/a;b=c,d"}, "/a;b=c,d", b"/a;b=c,d"),
        ({"RAW_URI": "*", "PATH_INFO": "*"}, "*", b"*"),
    ],
)
def test_path_and_raw_path(fields: dict[str, object], path: str, raw_path: bytes) -> None:
    scope = build_scope(make_environ(**fields))

    assert scope["path"] == path
    assert scope["raw_path"] == raw_path
    assert scope["root_path"] == ""


@pytest.mark.parametrize(
    ("script_name", "path_info", "root_path", "path"),
    [
        # The current ASGI spec: path includes root_path (as SCRIPT_NAME + PATH_INFO).
        ("/app", "/x", "/app", "/app/x"),
        ("/app", "", "/app", "/app"),
        # A trailing "/" on SCRIPT_NAME would double the slash in path.
        ("/app/", "/x", "/app", "/app/x"),
        ("/", "/x", "", "/x"),
        ("/caf\xc3\xa9", "/x", "/caf\xe9", "/caf\xe9/x"),
        ("/\xff", "/x", "/\udcff", "/\udcff/x"),
        # werkzeug's test client makes PATH_INFO "foo" for the relative URL "foo": the path
        # "/foo" under SCRIPT_NAME, never "/appfoo" (outside the root).
        ("/app", "foo", "/app", "/app/foo"),
        ("/app/", "foo", "/app", "/app/foo"),
        ("", "foo", "", "/foo"),
        ("", "foo/bar", "", "/foo/bar"),
        ("", "*", "", "*"),
    ],
)
def test_root_path_comes_from_script_name(
    script_name: str, path_info: str, root_path: str, path: str
) -> None:
    scope = build_scope(make_environ(SCRIPT_NAME=script_name, PATH_INFO=path_info, RAW_URI=MISSING))

    assert scope["root_path"] == root_path
    assert scope["path"] == path
    assert scope["path"].startswith(scope["root_path"])


@pytest.mark.parametrize(
    ("script_name", "path_info", "raw_uri", "raw_path"),
    [
        # werkzeug's test client: PATH_INFO and RAW_URI "foo", whatever SCRIPT_NAME is.
        ("/app", "foo", "foo", b"foo"),
        ("", "foo", "foo", b"foo"),
        ("/app", "foo", MISSING, b"foo"),
        ("/app", "a b/\xff", MISSING, b"a%20b/%FF"),
    ],
)
def test_a_relative_path_info_is_kept_in_raw_path(
    script_name: str, path_info: str, raw_uri: object, raw_path: bytes
) -> None:
    scope = build_scope(make_environ(SCRIPT_NAME=script_name, PATH_INFO=path_info, RAW_URI=raw_uri))

    assert scope["raw_path"] == raw_path
    # And back: the same SCRIPT_NAME and PATH_INFO.
    environ = build_environ(scope)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)


def test_raw_path_from_raw_uri_includes_the_script_name() -> None:
    # gunicorn: SCRIPT_NAME (from the environment or a header) is part of RAW_URI.
    environ = make_environ(
        SCRIPT_NAME="/app", PATH_INFO="/a b", RAW_URI="/app/a%20b?q=1", QUERY_STRING="q=1"
    )

    scope = build_scope(environ)

    assert scope["raw_path"] == b"/app/a%20b"
    assert scope["path"] == "/app/a b"
    assert scope["query_string"] == b"q=1"


def test_text_beyond_latin1_in_the_environ_does_not_raise() -> None:
    # PEP 3333 forbids it, but a middleware may store real text: it is taken as UTF-8.
    scope = build_scope(make_environ(PATH_INFO="/café€", RAW_URI=MISSING, HTTP_X_NAME="€"))

    assert scope["path"] == "/café€"
    assert (b"x-name", "€".encode()) in scope["headers"]


# --- headers -------------------------------------------------------------------------------


def test_headers_from_http_keys_and_cgi_variables() -> None:
    environ = make_environ(
        HTTP_X_FORWARDED_FOR="10.0.0.1",
        HTTP_COOKIE="a=1; b=2",
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH="12",
        HTTP_ACCEPT="\xe9",
    )

    headers = build_scope(environ)["headers"]

    assert headers == [
        (b"host", b"127.0.0.1:8000"),
        (b"x-forwarded-for", b"10.0.0.1"),
        (b"cookie", b"a=1; b=2"),
        (b"accept", b"\xe9"),
        (b"content-type", b"application/json"),
        (b"content-length", b"12"),
    ]


def test_environs_of_one_shape_each_give_their_own_header_values() -> None:
    first = build_scope(make_environ(HTTP_COOKIE="a=1", HTTP_ACCEPT="text/html"))
    # The same keys in the same order: the remembered shape is reused, the values are this
    # request's.
    second = build_scope(make_environ(HTTP_COOKIE="b=2", HTTP_ACCEPT="*/*"))
    assert first["headers"] == [
        (b"host", b"127.0.0.1:8000"),
        (b"cookie", b"a=1"),
        (b"accept", b"text/html"),
    ]
    assert second["headers"] == [
        (b"host", b"127.0.0.1:8000"),
        (b"cookie", b"b=2"),
        (b"accept", b"*/*"),
    ]


def test_a_remembered_shape_still_checks_every_value() -> None:
    build_scope(make_environ(HTTP_X_A="fine"))
    with pytest.raises(PeerProtocolError, match="HTTP_X_A"):
        build_scope(make_environ(HTTP_X_A=b"bytes"))


def test_remembered_shapes_are_bounded() -> None:
    for number in range(300):
        # A client that sends a new header name with every request.
        headers = build_scope(make_environ(**{f"HTTP_X_{number}": str(number)}))["headers"]
        assert headers[-1] == (f"x-{number}".encode(), str(number).encode())
    info = scope_module._header_pairs.cache_info()
    assert info.maxsize is not None
    assert info.currsize <= info.maxsize


@pytest.mark.parametrize(
    "fields",
    [
        {"CONTENT_TYPE": "", "CONTENT_LENGTH": ""},
        # wsgiref.validate forbids these twins; were they there, they would duplicate headers.
        {"HTTP_CONTENT_TYPE": "text/plain", "HTTP_CONTENT_LENGTH": "5"},
    ],
)
def test_empty_and_twin_content_headers_are_left_out(fields: dict[str, object]) -> None:
    headers = build_scope(make_environ(**fields))["headers"]

    assert headers == [(b"host", b"127.0.0.1:8000")]


# --- client, server, scheme, http_version -------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "client", "server"),
    [
        ({}, ("127.0.0.1", 50000), ("127.0.0.1", 8000)),
        # wsgiref gives no REMOTE_PORT; ASGI wants an int.
        ({"REMOTE_PORT": MISSING}, ("127.0.0.1", 0), ("127.0.0.1", 8000)),
        ({"REMOTE_ADDR": MISSING}, None, ("127.0.0.1", 8000)),
        ({"REMOTE_ADDR": ""}, None, ("127.0.0.1", 8000)),
        # gunicorn on a Unix socket without a Host header gives SERVER_PORT "".
        (
            {"SERVER_NAME": "/run/app.sock", "SERVER_PORT": ""},
            ("127.0.0.1", 50000),
            ("/run/app.sock", None),
        ),
        ({"SERVER_NAME": MISSING}, ("127.0.0.1", 50000), None),
        ({"SERVER_PORT": 8080}, ("127.0.0.1", 50000), ("127.0.0.1", 8080)),
        ({"REMOTE_PORT": 50001}, ("127.0.0.1", 50001), ("127.0.0.1", 8000)),
        # Not a port: 0 (client) and None (server), as for a missing one.
        ({"REMOTE_PORT": "5x"}, ("127.0.0.1", 0), ("127.0.0.1", 8000)),
        ({"REMOTE_PORT": "\u0661\u0662"}, ("127.0.0.1", 0), ("127.0.0.1", 8000)),
        ({"SERVER_PORT": "80x"}, ("127.0.0.1", 50000), ("127.0.0.1", None)),
    ],
)
def test_client_and_server(
    fields: dict[str, object],
    client: tuple[str, int] | None,
    server: tuple[str, int | None] | None,
) -> None:
    scope = build_scope(make_environ(**fields))

    assert scope["client"] == client
    assert scope["server"] == server


def test_server_seen_before_is_the_same_answer() -> None:
    for _ in range(2):
        for port in range(10):
            scope = build_scope(make_environ(SERVER_NAME=f"host{port}", SERVER_PORT=str(port)))
            assert scope["server"] == (f"host{port}", port)
    assert build_scope(make_environ(SERVER_NAME="h", SERVER_PORT=8080))["server"] == ("h", 8080)


@pytest.mark.parametrize(
    ("protocol", "version"),
    [
        ("HTTP/1.1", "1.1"),
        ("HTTP/1.0", "1.0"),
        ("HTTP/2", "2"),
        ("HTTP/2.0", "2"),
        ("HTTP/3", "3"),
        ("HTTP/0.9", "1.0"),
        ("INCLUDED", "1.1"),
        (MISSING, "1.1"),
        (11, "1.1"),
    ],
)
def test_http_version(protocol: object, version: str) -> None:
    assert build_scope(make_environ(SERVER_PROTOCOL=protocol))["http_version"] == version


@pytest.mark.parametrize(
    ("url_scheme", "scheme"),
    [("https", "https"), ("HTTP", "http"), ("", "http"), (MISSING, "http")],
)
def test_scheme(url_scheme: object, scheme: str) -> None:
    assert build_scope(make_environ(**{"wsgi.url_scheme": url_scheme}))["scheme"] == scheme


def test_fixed_keys() -> None:
    scope = build_scope(make_environ(REQUEST_METHOD="PATCH", QUERY_STRING="a=%20&b=\xe9"))

    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": ASGI_SPEC_VERSION}
    assert scope["method"] == "PATCH"
    assert scope["query_string"] == b"a=%20&b=\xe9"


# --- state and extensions -----------------------------------------------------------------


def test_state_is_a_shallow_copy_per_request() -> None:
    pool = ["connection"]
    state = {"pool": pool}

    first = build_scope(make_environ(), state=state)
    second = build_scope(make_environ(), state=state)
    first["state"]["user"] = "alice"

    # ASGI lifespan spec: each request gets a copy of the lifespan namespace, so one request's
    # additions stay its own, while the objects lifespan made are shared.
    assert second["state"] == {"pool": pool}
    assert state == {"pool": pool}
    assert first["state"]["pool"] is pool


def test_no_state_is_an_empty_dict() -> None:
    assert build_scope(make_environ())["state"] == {}


def test_pathsend_is_advertised_in_a_fresh_dict() -> None:
    first = build_scope(make_environ())
    second = build_scope(make_environ())

    assert first["extensions"] == {"http.response.pathsend": {}}
    assert first["extensions"] is not second["extensions"]
    assert build_scope(make_environ(), extensions=())["extensions"] == {}


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"REQUEST_METHOD": MISSING},
        {"REQUEST_METHOD": ""},
        {"REQUEST_METHOD": b"GET"},
        {"PATH_INFO": b"/"},
        {"SCRIPT_NAME": None},
        {"QUERY_STRING": 1},
        {"HTTP_X_A": b"bytes"},
        {"CONTENT_TYPE": ["text/plain"]},
    ],
)
def test_environ_breaking_pep_3333_is_a_peer_error(fields: dict[str, object]) -> None:
    with pytest.raises(PeerProtocolError) as info:
        build_scope(make_environ(**fields))
    assert info.value.status_code == 400


# --- request_body_length -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "length"),
    [
        ({"CONTENT_LENGTH": "10"}, 10),
        ({"CONTENT_LENGTH": " 10 "}, 10),
        ({"CONTENT_LENGTH": "0"}, 0),
        # A Content-Length bounds the read even when the input is terminated.
        ({"CONTENT_LENGTH": "5", "wsgi.input_terminated": True}, 5),
        # PEP 3333: without CONTENT_LENGTH nothing may be read, unless the server says its
        # input ends with the body (gunicorn, for chunked uploads): then read to EOF.
        ({"wsgi.input_terminated": True}, None),
        ({"CONTENT_LENGTH": "", "wsgi.input_terminated": True}, None),
        ({}, 0),
        ({"CONTENT_LENGTH": ""}, 0),
        ({"wsgi.input_terminated": False}, 0),
    ],
)
def test_request_body_length(fields: dict[str, object], length: int | None) -> None:
    assert request_body_length(fields) == length


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "1e3", "١٢", 12])
def test_invalid_content_length_is_a_400(value: object) -> None:
    with pytest.raises(PeerProtocolError) as info:
        request_body_length({"CONTENT_LENGTH": value})
    assert info.value.status_code == 400


# --- properties ----------------------------------------------------------------------------

_any_text = st.one_of(
    st.text(max_size=12),
    st.lists(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=6).map("".join),
)
_any_value = st.one_of(_any_text, st.binary(max_size=6), st.integers(), st.none(), st.booleans())
_cgi_keys = st.sampled_from(
    [
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "REMOTE_ADDR",
        "REMOTE_PORT",
        "RAW_URI",
        "REQUEST_URI",
        "wsgi.url_scheme",
        "wsgi.input_terminated",
        "HTTP_HOST",
        "HTTP_CONTENT_TYPE",
    ]
)
_any_key = st.one_of(_cgi_keys, _any_text, _any_text.map(lambda t: "HTTP_" + t), st.integers())
any_environ = st.one_of(
    st.dictionaries(_any_key, _any_value, max_size=12),
    # Mostly well-formed: every CGI key a str, so the checks past the first one are reached.
    st.builds(
        lambda base, extra: {**base, **extra},
        st.fixed_dictionaries(
            {"REQUEST_METHOD": st.sampled_from(["GET", "POST"])},
            optional=dict.fromkeys(
                (
                    "SCRIPT_NAME",
                    "PATH_INFO",
                    "QUERY_STRING",
                    "RAW_URI",
                    "SERVER_NAME",
                    "SERVER_PORT",
                    "REMOTE_ADDR",
                    "REMOTE_PORT",
                    "CONTENT_LENGTH",
                    "SERVER_PROTOCOL",
                ),
                _any_text,
            ),
        ),
        st.dictionaries(_any_text.map(lambda t: "HTTP_" + t), _any_text, max_size=4),
    ),
)


def _check_scope(scope: dict[str, Any]) -> None:
    """The ASGI HTTP connection scope's types (ASGI spec, "HTTP Connection Scope")."""
    assert scope["type"] == "http"
    assert type(scope["method"]) is str
    assert scope["method"]
    assert type(scope["scheme"]) is str
    assert scope["scheme"]
    assert scope["http_version"] in ("1.0", "1.1", "2", "3")
    assert type(scope["path"]) is str
    assert type(scope["raw_path"]) is bytes
    assert type(scope["root_path"]) is str
    assert scope["path"].startswith(scope["root_path"])
    assert type(scope["query_string"]) is bytes
    for name, value in scope["headers"]:
        assert type(name) is bytes
        assert type(value) is bytes
        assert name == name.lower()
    client, server = scope["client"], scope["server"]
    assert client is None or (type(client[0]) is str and type(client[1]) is int)
    assert server is None or (
        type(server[0]) is str and (server[1] is None or type(server[1]) is int)
    )
    assert type(scope["state"]) is dict
    assert type(scope["extensions"]) is dict


@PROPERTY
@given(environ=any_environ)
@example(environ={"REQUEST_METHOD": "GET", "PATH_INFO": "/\ud800"})
@example(environ={"REQUEST_METHOD": "GET", "HTTP_\udcff": "x"})
# SCRIPT_NAME ending inside a UTF-8 sequence: path must still start with root_path.
@example(environ={"REQUEST_METHOD": "GET", "SCRIPT_NAME": "\xc2", "PATH_INFO": "\x80"})
def test_any_environ_gives_a_valid_scope_or_a_protocol_error(environ: dict[Any, Any]) -> None:
    try:
        scope = build_scope(environ)
    except ProtocolError:
        return
    _check_scope(scope)


@PROPERTY
@given(environ=any_environ)
def test_any_environ_gives_a_body_length_or_a_protocol_error(environ: dict[Any, Any]) -> None:
    try:
        length = request_body_length(environ)
    except ProtocolError:
        return
    assert length is None or (type(length) is int and length >= 0)


@PROPERTY
@given(script=st.binary(max_size=8), path=st.binary(max_size=12), raw_uri=st.booleans())
def test_a_path_that_is_not_utf8_never_raises(script: bytes, path: bytes, raw_uri: bool) -> None:
    script_name = ("/" + script.decode("latin-1")).rstrip("/")
    path_info = "/" + path.decode("latin-1")
    environ = make_environ(SCRIPT_NAME=script_name, PATH_INFO=path_info)
    if not raw_uri:
        del environ["RAW_URI"]

    scope = build_scope(environ)

    # surrogateescape gives the bytes back exactly, however broken the UTF-8.
    decoded = scope["path"].encode("utf-8", "surrogateescape")
    assert decoded == (script_name + path_info).encode("latin-1")


# A PEP 3333 environ as a conforming server builds it: native strings throughout (latin-1 code
# points), SCRIPT_NAME empty or "/..." without a trailing "/", PATH_INFO empty or "/...".
_latin1 = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=10)
_segment_text = st.text(
    alphabet=st.characters(max_codepoint=0xFF, exclude_characters="/"), max_size=6
)
_script_names = st.one_of(
    st.just(""), st.lists(_segment_text.map(lambda s: "/" + s), min_size=1, max_size=3).map("".join)
).filter(lambda s: not s.endswith("/"))
_path_infos = st.one_of(st.just(""), _latin1.map(lambda t: "/" + t))
_header_keys = (
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=1, max_size=10)
    .map(lambda t: "HTTP_" + t)
    .filter(lambda k: k not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"))
)
_tokens = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1, max_size=8)


@st.composite
def pep3333_environs(draw: st.DrawFn) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": draw(_tokens),
        "SCRIPT_NAME": draw(_script_names),
        "PATH_INFO": draw(_path_infos),
        "QUERY_STRING": draw(_latin1),
        "SERVER_NAME": draw(st.sampled_from(["127.0.0.1", "example.com", "::1"])),
        "SERVER_PORT": str(draw(st.integers(min_value=0, max_value=65535))),
        "SERVER_PROTOCOL": draw(st.sampled_from(["HTTP/1.0", "HTTP/1.1", "HTTP/2"])),
        "wsgi.url_scheme": draw(st.sampled_from(["http", "https"])),
        "wsgi.version": (1, 0),
    }
    environ.update(draw(st.dictionaries(_header_keys, _latin1, max_size=6)))
    if draw(st.booleans()):
        environ["CONTENT_TYPE"] = draw(_latin1)
    if draw(st.booleans()):
        environ["CONTENT_LENGTH"] = str(draw(st.integers(min_value=0, max_value=10**9)))
    if draw(st.booleans()):
        environ["REMOTE_ADDR"] = draw(st.sampled_from(["127.0.0.1", "::1", "10.1.2.3"]))
        environ["REMOTE_PORT"] = str(draw(st.integers(min_value=0, max_value=65535)))
    if draw(st.booleans()):
        # gunicorn's RAW_URI: the path as sent, percent-encoded, with the query.
        raw = (environ["SCRIPT_NAME"] + environ["PATH_INFO"]).encode("latin-1")
        safe = draw(st.sampled_from(["/", "/;=,~!$&'()*+:@"]))
        target = quote(raw, safe=safe)
        environ["RAW_URI"] = target + (
            "?" + environ["QUERY_STRING"] if environ["QUERY_STRING"] else ""
        )
    return environ


# PEP 3333 ("environ Variables"): the CGI keys, the HTTP_ keys, wsgi.version, wsgi.url_scheme.
_PEP_3333_KEYS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "wsgi.version",
    "wsgi.url_scheme",
    "wsgi.multiprocess",
    "wsgi.run_once",
)


def _pep3333(environ: dict[str, Any]) -> dict[str, Any]:
    kept = {key: environ.get(key) for key in _PEP_3333_KEYS}
    kept.update({k: v for k, v in environ.items() if k.startswith("HTTP_")})
    # An empty value means "none" (CGI, RFC 3875 sections 4.1.2-3 and 4.1.8).
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH", "REMOTE_ADDR", "REMOTE_PORT"):
        if not kept[key]:
            kept[key] = None
    return kept


@PROPERTY
@given(environ=pep3333_environs(), multiprocess=st.booleans(), run_once=st.booleans())
@example(
    environ={
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/\xff",
        "PATH_INFO": "/%\xc3",
        "QUERY_STRING": "",
        "SERVER_NAME": "::1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/2",
        "wsgi.url_scheme": "https",
        "wsgi.version": (1, 0),
        "RAW_URI": "/%FF/%25%C3",
    },
    multiprocess=True,
    run_once=False,
)
def test_round_trip_keeps_every_pep_3333_key(
    environ: dict[str, Any], multiprocess: bool, run_once: bool
) -> None:
    environ["wsgi.multiprocess"] = multiprocess
    environ["wsgi.run_once"] = run_once
    options = EnvironOptions(max_headers=None, multiprocess=multiprocess, run_once=run_once)

    again = build_environ(build_scope(environ), options)

    assert _pep3333(again) == _pep3333(environ)


@PROPERTY
@given(
    script=st.one_of(st.just(""), _latin1.map(lambda t: "/" + t.strip("/")).filter(bool)),
    path=_latin1.filter(lambda t: t[:1] not in ("", "/") and t != "*"),
)
def test_a_relative_path_info_survives_scope_and_back(script: str, path: str) -> None:
    # werkzeug's test client: PATH_INFO "foo" (any latin-1 text without its leading "/").
    scope = build_scope(make_environ(SCRIPT_NAME=script, PATH_INFO=path, RAW_URI=MISSING))

    assert scope["path"].startswith(scope["root_path"] + "/")
    environ = build_environ(scope)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script.rstrip("/"), path)


# --- issue 19: numbers too long for int() ---------------------------------------------------


def test_ports_too_long_for_int_are_not_numbers() -> None:
    # int() of more than 4300 digits raises ValueError (CPython's limit): never let it escape.
    environ = _issue19_environ(SERVER_PORT="9" * 5000, REMOTE_PORT="9" * 5000)
    scope = build_scope(environ)
    assert scope["server"] == ("localhost", None)
    assert scope["client"] == ("127.0.0.1", 0)


def test_content_length_too_long_for_int_is_a_400() -> None:
    with pytest.raises(PeerProtocolError) as info:
        request_body_length(_issue19_environ(CONTENT_LENGTH="9" * 5000))
    assert info.value.status_code == 400


@pytest.mark.parametrize(("count", "refused"), [(100, False), (101, True), (100_000, True)])
def test_header_count_cap(count: int, refused: bool) -> None:
    environ = _issue19_environ(**{f"HTTP_X_{i}": "v" for i in range(count)})
    if refused:
        with pytest.raises(PeerProtocolError) as info:
            build_scope(environ)
        assert info.value.status_code == 431
    else:
        assert len(build_scope(environ)["headers"]) == count
    assert len(build_scope(environ, max_headers=None)["headers"]) == count


def _issue19_environ(**extra: str) -> dict[str, str]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
    }
    environ.update(extra)
    return environ


@pytest.mark.parametrize(
    "key", ["HTTP_X_\u212aEY", "HTTP_X_\xdf", "HTTP_X FOO", "HTTP_", "HTTP_X:Y", "HTTP_\u0130D"]
)
def test_environ_keys_that_are_not_token_headers_give_no_header(key: str) -> None:
    # The mirror of header_environ_key: str.lower() would fold KELVIN SIGN into "k".
    scope = build_scope(_issue19_environ(**{key: "v", "HTTP_HOST": "example.com"}))
    assert scope["headers"] == [(b"host", b"example.com")]


def test_environ_key_case_is_folded_as_ascii() -> None:
    scope = build_scope(_issue19_environ(HTTP_X_MiXeD="v"))
    assert scope["headers"] == [(b"x-mixed", b"v")]


def test_a_shape_remembered_without_a_cap_is_still_capped() -> None:
    # The key-shape memo is shared: a shape first seen with max_headers=None must still be
    # refused by a caller with the default cap.
    environ = _issue19_environ(**{f"HTTP_X_SHAPE_{i}": "v" for i in range(150)})
    assert len(build_scope(environ, max_headers=None)["headers"]) == 150
    with pytest.raises(PeerProtocolError) as info:
        build_scope(environ)
    assert info.value.status_code == 431


def test_cgi_headers_count_towards_the_cap() -> None:
    environ = _issue19_environ(**{f"HTTP_X_{i}": "v" for i in range(99)})
    environ["CONTENT_TYPE"], environ["CONTENT_LENGTH"] = "text/plain", "0"
    with pytest.raises(PeerProtocolError) as info:
        build_scope(environ)
    assert info.value.status_code == 431
