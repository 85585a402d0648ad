"""PEP 3333 environ -> ASGI HTTP scope, the exact inverse of `build_environ`. Pure."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from crossgate.exceptions import AppProtocolError, PeerProtocolError
from crossgate.sansio.headers import (
    DEFAULT_MAX_HEADERS,
    MAX_CONTENT_LENGTH_DIGITS,
    TOKEN,
    check_header_count,
    parse_content_length,
)
from crossgate.sansio.paths import PATH_SAFE

__all__ = ["ASGI_SPEC_VERSION", "DEFAULT_EXTENSIONS", "build_scope", "request_body_length"]

# 2.4: send() on a closed connection raises an OSError; 2.5 only adds a websocket field.
ASGI_SPEC_VERSION = "2.4"

# "Path Send": the adapter serves the file through ``wsgi.file_wrapper``.
DEFAULT_EXTENSIONS = ("http.response.pathsend",)

_HTTP_VERSIONS = {f"HTTP/{version}": version for version in ("1.0", "1.1", "2", "3")}
# HTTP/0.9: the nearest version the ASGI spec knows.
_HTTP_VERSIONS |= {"HTTP/2.0": "2", "HTTP/3.0": "3", "HTTP/0.9": "1.0"}

# An HTTP_ twin of a CGI variable would duplicate the header.
_CGI_TWINS = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})


def _native(value: object, key: str) -> bytes:
    """The bytes of a PEP 3333 native string (UTF-8 beyond latin-1); raises for a non-``str``."""
    if type(value) is not str:
        raise PeerProtocolError(
            f"environ[{key!r}] must be a str (PEP 3333), not {type(value).__name__}"
        )
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _header_name(key: object) -> bytes:
    """``HTTP_X_FORWARDED_FOR`` -> ``b"x-forwarded-for"``; ``b""`` for a key that is no header.
    Lowered as bytes: ``str.lower()`` folds ``"\u212a"`` (KELVIN SIGN) into ``"k"``."""
    if type(key) is not str or not key.startswith("HTTP_") or key in _CGI_TWINS:
        return b""
    if TOKEN.fullmatch(key, 5):
        return key[5:].encode("ascii").lower().replace(b"_", b"-")
    return b""


@functools.lru_cache(maxsize=256)
def _header_pairs(keys: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    """The (environ key, header name) pairs among ``keys``: servers build environs alike."""
    return tuple((key, name) for key in keys if (name := _header_name(key)))


def _raw_path(environ: Mapping[str, Any], decoded: bytes) -> bytes:
    """The raw request target's path when it decodes to ``decoded``, else ``decoded`` quoted."""
    uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if type(uri) is str:
        target = uri.partition("?")[0]
        if not target.startswith("/"):
            # RFC 9112 section 3.2.2: a request to a proxy names the whole URL.
            _, sep, rest = target.partition("://")
            if sep:
                slash = rest.find("/")
                target = rest[slash:] if slash >= 0 else ""
        raw = _native(target, "RAW_URI")
        if raw == decoded or unquote_to_bytes(raw) == decoded:
            return raw
    return quote(decoded, safe=PATH_SAFE).encode("ascii")


def _port(value: object) -> int | None:
    if type(value) is int:
        return value
    # int() refuses more than 4300 digits.
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

    Raises:
        PeerProtocolError: ``CONTENT_LENGTH`` is not a non-negative integer (400).
    """
    length = environ.get("CONTENT_LENGTH")
    if length:
        text = length.strip() if type(length) is str and length.isascii() else ""
        try:
            return parse_content_length((text.encode("ascii"),))
        except AppProtocolError:
            raise PeerProtocolError(f"invalid Content-Length: {length!r}") from None
    return None if environ.get("wsgi.input_terminated") else 0


def build_scope(
    environ: Mapping[str, Any],
    *,
    state: Mapping[str, Any] | None = None,
    extensions: Iterable[str] = DEFAULT_EXTENSIONS,
    max_headers: int | None = DEFAULT_MAX_HEADERS,
) -> dict[str, Any]:
    """Build the ASGI ``http`` scope of a WSGI request (docs/asgi-to-wsgi.md has each key).

    Raises:
        PeerProtocolError: no ``REQUEST_METHOD``, a CGI or ``HTTP_*`` value not a ``str`` (400);
            more than ``max_headers`` headers (431; ``None``: no cap).
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
        # werkzeug's test client sends PATH_INFO "foo": read as "/foo" under root_path, never
        # "/appfoo"; raw_path keeps "foo" for `build_environ`. ("*": OPTIONS *.)
        relative = path_info
        path_info = b"/" + path_info
    decoded = script + path_info
    # Decoded apart: path starts with root_path even if SCRIPT_NAME ends inside a UTF-8 sequence.
    root_path = script.decode("utf-8", "surrogateescape")

    headers = []
    try:
        for key, name in _header_pairs(tuple(environ)):
            headers.append((name, environ[key].encode("latin-1")))
    except (AttributeError, UnicodeEncodeError):
        # Key by key, to name the value that breaks PEP 3333.
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
