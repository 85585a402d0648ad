"""PEP 3333 environ -> ASGI HTTP scope, for `ASGIToWSGI`. Pure: no threads, asyncio or I/O.

The inverse of `crossgate.sansio.environ.build_environ`: every choice below keeps the round
trip environ -> scope -> environ exact for the PEP 3333 keys.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from crossgate.exceptions import AppProtocolError, PeerProtocolError
from crossgate.sansio.headers import (
    DEFAULT_MAX_HEADERS,
    MAX_CONTENT_LENGTH_DIGITS,
    check_header_count,
    parse_content_length,
)

__all__ = ["ASGI_SPEC_VERSION", "DEFAULT_EXTENSIONS", "build_scope", "request_body_length"]

# ASGI HTTP spec 2.4: send() on a closed connection raises an OSError (`ClientDisconnected`),
# on which Starlette's streaming response stops instead of listening for http.disconnect.
# 2.5 only adds a websocket field.
ASGI_SPEC_VERSION = "2.4"

# The ASGI "Path Send" extension: the adapter serves the file through ``wsgi.file_wrapper``.
DEFAULT_EXTENSIONS = ("http.response.pathsend",)

# What ``quote`` keeps when a raw path is rebuilt: what RFC 3986 section 3.3 allows in a path.
_PATH_SAFE = "/;=,~!$&'()*+:@"

# SERVER_PROTOCOL -> http_version; the ASGI spec knows "1.0", "1.1" and "2" (and "3" in use).
_HTTP_VERSIONS = {
    "HTTP/1.1": "1.1",
    "HTTP/1.0": "1.0",
    "HTTP/2": "2",
    "HTTP/2.0": "2",
    "HTTP/3": "3",
    "HTTP/3.0": "3",
    # HTTP/0.9 has no headers at all; a server that still reports it gets the nearest version.
    "HTTP/0.9": "1.0",
}

# RFC 9110 section 5.6.2: a header name is a token (ASCII only).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# PEP 3333 reserves these for the CGI variables; an HTTP_ twin would duplicate the header.
_CGI_TWINS = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})


def _native(value: object, key: str) -> bytes:
    """The bytes a PEP 3333 "native string" (latin-1 code points) carries. Real text, which
    breaks PEP 3333, is UTF-8 encoded instead of a crash (``surrogatepass``: even a lone
    surrogate).

    Raises:
        PeerProtocolError: ``value`` is not a ``str``.
    """
    if type(value) is not str:
        raise PeerProtocolError(
            f"environ[{key!r}] must be a str (PEP 3333), not {type(value).__name__}"
        )
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _header_name(key: object) -> bytes:
    """``HTTP_X_FORWARDED_FOR`` -> ``b"x-forwarded-for"``; ``b""`` for a key that is no header
    (not ``HTTP_*``, a CGI twin, not an RFC 9110 token). Lower-cased as ASCII bytes:
    ``str.lower()`` would fold ``"\u212a"`` (KELVIN SIGN) into a ``"k"`` no client sent."""
    if type(key) is not str or not key.startswith("HTTP_") or key in _CGI_TWINS:
        return b""
    if _TOKEN.fullmatch(key, 5):
        return key[5:].encode("ascii").lower().replace(b"_", b"-")
    return b""


@functools.lru_cache(maxsize=256)
def _header_pairs(keys: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    """The (environ key, header name) pairs among an environ's ``keys``, in order. Cached:
    a server builds environs alike, so a request's headers cost one lookup in C, not one per
    key in Python (a fifth of the in-process hello's time). Bounded against varied headers."""
    return tuple((key, name) for key in keys if (name := _header_name(key)))


def _raw_path(environ: Mapping[str, Any], decoded: bytes) -> bytes:
    """The request path as the client sent it: ``RAW_URI`` (gunicorn, uWSGI) or ``REQUEST_URI``
    (mod_wsgi) when it decodes to ``decoded`` (a middleware may have rewritten the path), else
    rebuilt from ``decoded``."""
    uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if type(uri) is str:
        target = uri.partition("?")[0]
        if not target.startswith("/"):
            # RFC 9112 section 3.2.2: a request to a proxy names the whole URL; "*" and odd
            # targets stay as they are, for the check below.
            _, sep, rest = target.partition("://")
            if sep:
                slash = rest.find("/")
                target = rest[slash:] if slash >= 0 else ""
        raw = _native(target, "RAW_URI")
        if raw == decoded or unquote_to_bytes(raw) == decoded:
            return raw
    return quote(decoded, safe=_PATH_SAFE).encode("ascii")


def _port(value: object) -> int | None:
    if type(value) is int:
        return value
    # Short enough for int(), which refuses more than 4300 digits with a ValueError.
    if (
        type(value) is str
        and len(value) <= MAX_CONTENT_LENGTH_DIGITS
        and value.isascii()
        and value.isdigit()
    ):
        return int(value)
    return None


def request_body_length(environ: Mapping[str, Any]) -> int | None:
    """How many request body bytes to read from ``wsgi.input``; ``None`` means "to EOF".

    PEP 3333 forbids reading past ``CONTENT_LENGTH`` (``wsgiref``'s input would block), so none
    means no body, unless the server sets ``wsgi.input_terminated`` (gunicorn, mod_wsgi: how a
    chunked upload reaches the app).

    Raises:
        PeerProtocolError: ``CONTENT_LENGTH`` is not a non-negative integer (400).
    """
    length = environ.get("CONTENT_LENGTH")
    if length:
        text = length.strip() if type(length) is str and length.isascii() else ""
        try:
            return parse_content_length((text.encode("ascii"),))  # the one Content-Length rule
        except AppProtocolError:
            raise PeerProtocolError(f"invalid Content-Length: {length!r}") from None
    if environ.get("wsgi.input_terminated"):
        return None
    return 0


def build_scope(
    environ: Mapping[str, Any],
    *,
    state: Mapping[str, Any] | None = None,
    extensions: Iterable[str] = DEFAULT_EXTENSIONS,
    max_headers: int | None = DEFAULT_MAX_HEADERS,
) -> dict[str, Any]:
    """Build the ASGI ``http`` scope of a WSGI request.

    ``path`` is ``SCRIPT_NAME`` + ``PATH_INFO`` (ASGI: it includes ``root_path``) decoded from
    UTF-8 with ``surrogateescape`` (as `os.fsdecode`), so bytes that are not UTF-8 never raise
    and `build_environ` turns them back; ``raw_path`` holds the bytes the client sent.
    ``headers`` come from ``HTTP_*``, ``CONTENT_TYPE`` and ``CONTENT_LENGTH``; ``client``'s port
    is 0 when unknown, ``server``'s ``None`` when not a number (a Unix socket); ``http_version``
    is 1.1 when unknown; ``state`` is a shallow copy of the lifespan state. More than
    ``max_headers`` headers get a 431, as with `WSGIToASGI`; ``None`` for no cap.

    Raises:
        PeerProtocolError: ``REQUEST_METHOD`` is missing or empty, or a CGI value or ``HTTP_*``
            value is not a ``str`` (400); too many headers (431).
    """
    get = environ.get
    method = get("REQUEST_METHOD")
    script_name, path = get("SCRIPT_NAME", ""), get("PATH_INFO", "")
    query_string, scheme = get("QUERY_STRING", ""), get("wsgi.url_scheme")
    server_name, server_port = get("SERVER_NAME"), get("SERVER_PORT")
    remote, remote_port = get("REMOTE_ADDR"), get("REMOTE_PORT")
    protocol = get("SERVER_PROTOCOL")
    if type(method) is not str or not method:
        raise PeerProtocolError(f"the environ's REQUEST_METHOD is missing or empty: {method!r}")
    try:
        script = script_name.encode("latin-1")
        path_info = path.encode("latin-1")
        query = query_string.encode("latin-1")
    except (AttributeError, UnicodeEncodeError):
        script = _native(script_name, "SCRIPT_NAME")
        path_info = _native(path, "PATH_INFO")
        query = _native(query_string, "QUERY_STRING")
    script = script.rstrip(b"/")
    relative = None
    if path_info[:1] != b"/" and path_info and path_info != b"*":
        # werkzeug's test client makes PATH_INFO "foo" for the relative URL "foo" (CGI, RFC
        # 3875 section 4.1.5, has it start with "/"): read as "/foo" under root_path, never
        # "/appfoo"; raw_path keeps "foo", so `build_environ` gives it back. ("*": OPTIONS *.)
        relative = path_info
        path_info = b"/" + path_info
    decoded = script + path_info
    # Decoded apart: path starts with root_path even if SCRIPT_NAME ends inside a UTF-8 sequence.
    root_path = script.decode("utf-8", "surrogateescape")

    headers = []
    try:
        # Not a list comprehension, a call of its own before Python 3.12 (PEP 709).
        for key, name in _header_pairs(tuple(environ)):
            headers.append((name, environ[key].encode("latin-1")))
    except (AttributeError, UnicodeEncodeError):
        # A value that breaks PEP 3333 somewhere: key by key, to say which.
        headers = [
            (name, _native(value, key))
            for key, value in environ.items()
            if (name := _header_name(key))
        ]
    content_type = get("CONTENT_TYPE")
    if content_type:
        headers.append((b"content-type", _native(content_type, "CONTENT_TYPE")))
    content_length = get("CONTENT_LENGTH")
    if content_length:
        headers.append((b"content-length", _native(content_length, "CONTENT_LENGTH")))
    if max_headers is not None and len(headers) > max_headers:
        check_header_count(len(headers), max_headers)

    server = (server_name, _port(server_port)) if type(server_name) is str and server_name else None
    client = (remote, _port(remote_port) or 0) if type(remote) is str and remote else None
    http_version = _HTTP_VERSIONS.get(protocol, "1.1") if type(protocol) is str else "1.1"

    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": ASGI_SPEC_VERSION},
        "http_version": http_version,
        "method": method,
        "scheme": scheme.lower() if type(scheme) is str and scheme else "http",
        "path": root_path + path_info.decode("utf-8", "surrogateescape"),
        # The usual request: the target is PATH_INFO itself (`_raw_path` in three more calls).
        "raw_path": path_info
        if not script and relative is None and get("RAW_URI") == path
        else _raw_path(environ, decoded if relative is None else relative),
        "query_string": query,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
        "state": dict(state) if state else {},
        "extensions": (
            {"http.response.pathsend": {}}
            if extensions is DEFAULT_EXTENSIONS
            else {name: {} for name in extensions}
        ),
    }
