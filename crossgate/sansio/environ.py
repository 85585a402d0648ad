"""ASGI HTTP scope -> PEP 3333 environ. Pure: no threads, no asyncio, no I/O.

The adapter adds the stream objects (``wsgi.input``, ``wsgi.errors``, ``wsgi.file_wrapper``)
itself; everything that can be computed from the scope alone is computed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio.headers import DEFAULT_MAX_HEADERS, environ_headers

__all__ = ["EnvironOptions", "build_environ", "split_script_name"]

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


@dataclass(frozen=True, slots=True)
class EnvironOptions:
    """Choices an operator makes about the environ; the defaults fit most deployments.

    Attributes:
        keep_underscore_headers: keep request headers whose names contain ``_`` (dropped by
            default, see `crossgate.sansio.headers.environ_headers`).
        max_headers: answer 431 when a request has more headers than this; ``None`` for no cap.
        multiprocess: the value of ``wsgi.multiprocess`` (true when the server runs workers).
        run_once: the value of ``wsgi.run_once``.
    """

    keep_underscore_headers: bool = False
    max_headers: int | None = DEFAULT_MAX_HEADERS
    multiprocess: bool = False
    run_once: bool = False


def split_script_name(root_path: str, path: bytes) -> tuple[str, bytes]:
    """Split a decoded request path into ``SCRIPT_NAME`` and the rest.

    ``root_path`` is removed from the front of ``path`` only at a segment boundary: with a root
    of ``/app``, ``/app/x`` gives ``/x`` and ``/app`` gives ``""``, but ``/application`` is left
    whole (asgiref and a2wsgi give ``PATH_INFO='lication'`` there).

    The current ASGI spec (HTTP scope, ``root_path``) says ``path`` includes ``root_path``;
    older servers sent ``path`` without it. When ``path`` does not start with the root at a
    boundary, it is taken to be such a server's path and kept whole.

    Returns ``(SCRIPT_NAME, PATH_INFO bytes)``; ``SCRIPT_NAME`` never ends with ``/``.

    Raises:
        PeerProtocolError: ``root_path`` holds a lone surrogate.
    """
    script_name = root_path.rstrip("/")
    if not script_name:
        return "", path
    root = _utf8(script_name, "root_path")
    if path.startswith(root) and (len(path) == len(root) or path[len(root)] == 0x2F):
        path = path[len(root) :]
    # SCRIPT_NAME, like every environ string, carries the bytes as latin-1 (PEP 3333,
    # "Unicode Issues").
    return root.decode("latin-1"), path


def _is_relative_target(root_path: str, path: str, target: bytes) -> bool:
    """True when ``target``, a ``raw_path`` without its leading ``/``, is ``path`` below
    ``root_path``: the relative target `crossgate.sansio.scope.build_scope` keeps from a
    ``PATH_INFO`` such as ``foo``; not when a router's mount has moved ``root_path`` since."""
    root = root_path.rstrip("/")
    return path == root + "/" + target.decode("utf-8", "surrogateescape")


def _utf8(text: str, what: str) -> bytes:
    """Encode a decoded scope string back to its bytes (undoing ``surrogateescape`` too).

    Raises:
        PeerProtocolError: ``text`` holds a lone surrogate, which no decoding of bytes off the
            wire can produce.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise PeerProtocolError(f"the scope's {what} is not valid Unicode: {text!r}") from None


def _host_and_port(
    scope: Mapping[str, Any], host_header: str | None, scheme: str
) -> tuple[str, str]:
    server = scope.get("server")
    if server is not None and server[1] is not None:
        return str(server[0]), str(server[1])
    if host_header:
        # "[::1]:8000", "example.com:8000" or "example.com"; the port is what follows the last
        # colon that is not inside an IPv6 literal.
        host, sep, port = host_header.rpartition(":")
        if sep and port.isdigit() and not host.endswith(":"):
            return host, port
        return host_header, _DEFAULT_PORTS.get(scheme, "80")
    if server is not None:
        # A Unix socket: server is (path, None). PEP 3333 requires a SERVER_NAME.
        return str(server[0]), _DEFAULT_PORTS.get(scheme, "80")
    return "localhost", _DEFAULT_PORTS.get(scheme, "80")


def build_environ(
    scope: Mapping[str, Any], options: EnvironOptions = EnvironOptions()
) -> dict[str, Any]:
    """Build the PEP 3333 environ for an ASGI ``http`` scope, without the stream objects.

    ``PATH_INFO`` comes from ``raw_path`` when the server gives it: the bytes are
    percent-decoded, then carried as latin-1, so ``%FF`` becomes the single code point U+00FF as
    under gunicorn and PEP 3333 ("Unicode Issues") asks. Only without ``raw_path`` is the decoded
    ``path`` used, encoded back to UTF-8 bytes. The raw target is kept as ``RAW_URI`` and
    ``REQUEST_URI``. The original scope is available as ``asgi.scope``.

    Raises:
        PeerProtocolError: a request the server should not have let through: too many headers
            (431), a bad ``Content-Length`` (400), a scope missing ``method`` or ``path``, or a
            ``path`` that is not valid Unicode (400).
    """
    try:
        method: str = scope["method"]
        path_text: str = scope["path"]
    except KeyError as exc:
        raise PeerProtocolError(f"HTTP scope has no {exc.args[0]!r}") from None
    scheme: str = scope.get("scheme") or "http"
    query: bytes = scope.get("query_string") or b""
    raw_path: bytes | None = scope.get("raw_path")
    if raw_path:
        # Some servers include the query in raw_path; the ASGI spec says it excludes it.
        raw_path = raw_path.partition(b"?")[0]
        decoded = unquote_to_bytes(raw_path)
        raw_target = raw_path.decode("latin-1")
    else:
        decoded = _utf8(path_text, "path")
        raw_target = quote(decoded, safe="/;=,~!$&'()*+:@")
    root_path: str = scope.get("root_path") or ""
    if decoded[:1] == b"/" or decoded == b"*":
        script_name, path_bytes = split_script_name(root_path, decoded)
    elif _is_relative_target(root_path, path_text, decoded):
        # A relative target (werkzeug's test client sends "foo" under SCRIPT_NAME "/app"):
        # `build_scope` kept it in raw_path, and PATH_INFO gets it back as it was.
        script_name = _utf8(root_path.rstrip("/"), "root_path").decode("latin-1")
        path_bytes = decoded
    else:
        # A relative raw_path that is not path below root_path (a router mounted the app
        # deeper since): path says where the request goes.
        script_name, path_bytes = split_script_name(root_path, _utf8(path_text, "path"))
    if query:
        raw_target = raw_target + "?" + query.decode("latin-1")

    environ: dict[str, Any] = environ_headers(
        scope.get("headers") or (),
        keep_underscores=options.keep_underscore_headers,
        max_headers=options.max_headers,
    )
    server_name, server_port = _host_and_port(scope, environ.get("HTTP_HOST"), scheme)
    client = scope.get("client")
    environ.update(
        {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": script_name,
            "PATH_INFO": path_bytes.decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "RAW_URI": raw_target,
            "REQUEST_URI": raw_target,
            "SERVER_NAME": server_name,
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": "HTTP/" + (scope.get("http_version") or "1.1"),
            "REMOTE_ADDR": str(client[0]) if client else "",
            "REMOTE_PORT": str(client[1]) if client and client[1] is not None else "",
            "HTTPS": "on" if scheme in ("https", "wss") else "off",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if scheme in ("https", "wss") else "http",
            "wsgi.multithread": True,
            "wsgi.multiprocess": options.multiprocess,
            "wsgi.run_once": options.run_once,
            # The adapter always gives the app an input that ends at the end of the body, so
            # apps may read to EOF without CONTENT_LENGTH (the mod_wsgi / gunicorn extension).
            "wsgi.input_terminated": True,
            "asgi.scope": scope,
        }
    )
    return environ
