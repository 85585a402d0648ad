"""PEP 3333 environ -> ASGI HTTP scope. Pure: no threads, no asyncio, no I/O.

The inverse of `crossgate.sansio.environ.build_environ`: `ASGIToWSGI` builds the scope of each
request here, and the adapter only adds what lives outside the environ (the lifespan ``state``).
Every choice below keeps the round trip environ -> scope -> environ exact for the PEP 3333 keys.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard
from urllib.parse import quote, unquote_to_bytes

from crossgate.exceptions import AppProtocolError, PeerProtocolError
from crossgate.sansio.headers import (
    DEFAULT_MAX_HEADERS,
    MAX_CONTENT_LENGTH_DIGITS,
    check_header_count,
    parse_content_length,
)

__all__ = ["ASGI_SPEC_VERSION", "DEFAULT_EXTENSIONS", "build_scope", "request_body_length"]

# ASGI HTTP spec 2.4 is the version in which ``send()`` on a closed connection raises an
# ``OSError`` subclass, which the adapter does (`crossgate.ClientDisconnected`). Starlette relies
# on it: from 2.4 on, a streaming response stops on that error instead of running a task that
# listens for ``http.disconnect``. 2.5 only adds a websocket field.
ASGI_SPEC_VERSION = "2.4"

# The ASGI "Path Send" extension: the adapter serves the file through ``wsgi.file_wrapper``.
DEFAULT_EXTENSIONS = ("http.response.pathsend",)

# Characters ``quote`` keeps when a raw path is rebuilt from decoded bytes: the sub-delims and
# ":@/" that RFC 3986 section 3.3 allows in a path, as `build_environ` does for ``RAW_URI``.
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
    """The bytes a PEP 3333 "native string" carries (one latin-1 code point per byte).

    PEP 3333 ("Unicode Issues") says environ strings hold only latin-1 code points. A server or
    middleware that breaks this and stores real text gets it UTF-8 encoded instead of a crash;
    ``surrogatepass`` keeps even a lone surrogate from raising: it becomes its three UTF-8-style
    bytes (``"\\ud800"`` -> ``b"\\xed\\xa0\\x80"``), which the ``surrogateescape`` decoding of the
    path then shows as three escaped bytes.

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
    """``HTTP_X_FORWARDED_FOR`` -> ``b"x-forwarded-for"`` (ASGI header names are lower case);
    ``b""`` for a key that is no header: not ``HTTP_*``, a twin of a CGI variable, or one whose
    name is not an RFC 9110 token.

    The name is lower-cased as ASCII bytes: ``str.lower()`` would fold ``"\u212a"`` (KELVIN
    SIGN) into ``"k"`` and hand the app a header no client sent (the mirror of
    `crossgate.sansio.headers.header_environ_key`).
    """
    if type(key) is not str or not key.startswith("HTTP_") or key in _CGI_TWINS:
        return b""
    if _TOKEN.fullmatch(key, 5):
        return key[5:].encode("ascii").lower().replace(b"_", b"-")
    return b""


@functools.lru_cache(maxsize=256)
def _header_pairs(keys: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    """The (environ key, header name) pairs among an environ's ``keys``, in order.

    Cached by the whole key tuple: a server builds every environ the same way, so a deployment
    sees few distinct key sequences (one per set of headers its clients send), and a request's
    headers then cost one lookup, hashed and compared in C, instead of one per key in Python
    (the in-process benchmark's hello row: about a fifth of the adapter's time). Bounded, so
    that clients varying their headers cannot grow it.
    """
    return tuple((key, name) for key in keys if (name := _header_name(key)))


def _target_path(uri: str) -> str:
    """The path of a request target: no query, and no scheme or authority in absolute form."""
    target = uri.partition("?")[0]
    if target.startswith("/"):
        return target
    # RFC 9112 section 3.2.2: a request to a proxy names the whole URL, "http://host/path".
    _, sep, rest = target.partition("://")
    if not sep:
        return target  # "*" (OPTIONS *) or something odd the check in _raw_path will judge
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else ""


def _raw_path(environ: Mapping[str, Any], decoded: bytes) -> bytes:
    """The request path as the client sent it, percent-escapes and all.

    gunicorn and uWSGI give the request target as ``RAW_URI``, mod_wsgi and others as
    ``REQUEST_URI``. It is used only when it decodes to ``SCRIPT_NAME`` + ``PATH_INFO``: a WSGI
    middleware that rewrote the path (or a server mounting the app with a decoded prefix) leaves
    a target that no longer describes the request. Otherwise the raw path is rebuilt from the
    decoded bytes, percent-encoding what must be.
    """
    uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if type(uri) is str:
        raw = _native(_target_path(uri), "RAW_URI")
        if raw == decoded or unquote_to_bytes(raw) == decoded:
            return raw
    return quote(decoded, safe=_PATH_SAFE).encode("ascii")


def _digits(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a str of ASCII digits short enough for int() (CPython refuses
    more than 4300 with a ValueError)."""
    return (
        type(value) is str
        and len(value) <= MAX_CONTENT_LENGTH_DIGITS
        and value.isascii()
        and value.isdigit()
    )


def _port(value: object) -> int | None:
    if type(value) is int:
        return value
    if _digits(value):
        return int(value)
    return None


def request_body_length(environ: Mapping[str, Any]) -> int | None:
    """How many request body bytes to read from ``wsgi.input``; ``None`` means "to EOF".

    PEP 3333 ("Input and Error Streams") forbids reading past ``CONTENT_LENGTH``, and without
    it a server's input may block forever at the end of the body (``wsgiref`` does), so no
    ``CONTENT_LENGTH`` means no body. The exception is a server that sets
    ``wsgi.input_terminated`` (gunicorn, mod_wsgi): its input ends where the body ends, which is
    how a chunked upload, sent without a Content-Length, reaches the app whole.

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

    * ``path`` is ``SCRIPT_NAME`` + ``PATH_INFO`` (the current ASGI spec says ``path`` includes
      ``root_path``), decoded from UTF-8. Bytes that are not UTF-8 never raise: they decode as
      U+DC80-U+DCFF (``surrogateescape``, as `os.fsdecode` does), so ``path`` still tells them
      apart and `build_environ` turns them back into the same bytes. ``raw_path`` holds the
      exact bytes the client sent (see `_raw_path`).
    * ``root_path`` is ``SCRIPT_NAME`` decoded the same way, without a trailing ``/``.
      A ``PATH_INFO`` without its leading ``/`` (``foo``, which werkzeug's test client makes
      for a relative URL) is read as ``/foo`` under ``SCRIPT_NAME``; ``raw_path`` keeps the
      relative target (``foo``), so `build_environ` gives ``PATH_INFO`` ``foo`` back.
    * ``headers`` come from the ``HTTP_*`` keys (``HTTP_X_FOO`` -> ``x-foo``), then
      ``CONTENT_TYPE`` and ``CONTENT_LENGTH`` when not empty.
    * ``client`` is ``(REMOTE_ADDR, REMOTE_PORT)`` (port 0 when the server gives none),
      ``server`` is ``(SERVER_NAME, SERVER_PORT)`` (port ``None`` when it is not a number, as
      for a Unix socket); ``scheme`` is ``wsgi.url_scheme``; ``http_version`` comes from
      ``SERVER_PROTOCOL`` (HTTP/1.1 when missing or unknown).
    * ``state`` is a shallow copy of ``state`` (the lifespan state, ASGI lifespan spec), and
      ``extensions`` names the server extensions the adapter offers.
    * More than ``max_headers`` headers (``HTTP_*`` keys plus ``CONTENT_TYPE`` and
      ``CONTENT_LENGTH``) are refused with 431, the cap and status `WSGIToASGI` uses
      (`crossgate.sansio.headers.check_header_count`); ``None`` for no cap.

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
        # The usual case: latin-1 str values, as PEP 3333 has them.
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
        # CGI (RFC 3875 section 4.1.5) has PATH_INFO empty or starting with "/", but
        # werkzeug's test client makes PATH_INFO "foo" (and RAW_URI "foo") for the relative
        # URL "foo": the path "foo" under SCRIPT_NAME, which werkzeug itself reads as "/foo".
        # An ASGI path is absolute and includes root_path, so path is root_path + "/foo",
        # never "/appfoo" (a path outside the root); raw_path keeps the target as it came,
        # "foo", from which `build_environ` gives PATH_INFO "foo" back. ("*" is OPTIONS *.)
        relative = path_info
        path_info = b"/" + path_info
    decoded = script + path_info
    # Decoded apart, so that path starts with root_path even when SCRIPT_NAME (wrongly) ends
    # inside a UTF-8 sequence.
    root_path = script.decode("utf-8", "surrogateescape")

    headers = []
    try:
        # A loop rather than a list comprehension, which is a function call of its own
        # before Python 3.12 (PEP 709 inlines comprehensions from 3.12 on).
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
        # The usual request, with no query and no SCRIPT_NAME: the target is PATH_INFO itself,
        # so it decodes to it (`_raw_path` would find the same, in three more calls).
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
