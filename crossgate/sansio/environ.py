"""ASGI HTTP scope -> PEP 3333 environ, all but the stream objects the adapter adds. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from crossgate.exceptions import PeerProtocolError
from crossgate.sansio.headers import DEFAULT_MAX_HEADERS, environ_headers
from crossgate.sansio.paths import PATH_SAFE, scope_bytes

__all__ = ["EnvironOptions", "build_environ", "split_script_name"]

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


@dataclass(frozen=True, slots=True)
class EnvironOptions:
    """Choices an operator makes about the environ (`WSGIToASGI`'s options of the same names)."""

    keep_underscore_headers: bool = False
    max_headers: int | None = DEFAULT_MAX_HEADERS
    multiprocess: bool = False
    run_once: bool = False


def split_script_name(root_path: str, path: bytes) -> tuple[str, bytes]:
    """Split a decoded request path into ``(SCRIPT_NAME, PATH_INFO bytes)`` at a segment boundary.

    Raises:
        PeerProtocolError: ``root_path`` holds a lone surrogate.
    """
    script_name = root_path.rstrip("/")
    if not script_name:
        return "", path
    root = scope_bytes(script_name, "root_path")
    if path.startswith(root) and (len(path) == len(root) or path[len(root)] == 0x2F):
        path = path[len(root) :]
    return root.decode("latin-1"), path


def _host_and_port(scope: Mapping[str, Any], host: str | None, scheme: str) -> tuple[str, str]:
    server = scope.get("server")
    if server is not None and server[1] is not None:
        return str(server[0]), str(server[1])
    default_port = _DEFAULT_PORTS.get(scheme, "80")
    if host:
        # The port follows the last colon that is not inside an IPv6 literal ("[::1]:8000").
        name, sep, port = host.rpartition(":")
        if sep and port.isdigit() and not name.endswith(":"):
            return name, port
        return host, default_port
    # A Unix socket's server is (path, None); PEP 3333 requires a SERVER_NAME.
    return (str(server[0]) if server is not None else "localhost"), default_port


def build_environ(
    scope: Mapping[str, Any], options: EnvironOptions = EnvironOptions()
) -> dict[str, Any]:
    """Build the PEP 3333 environ of an ASGI ``http`` scope (docs/wsgi-to-asgi.md has each key).

    Raises:
        PeerProtocolError: too many headers (431), a bad ``Content-Length``, a scope without
            ``method`` or ``path``, or a ``path`` that is not valid Unicode (400).
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
        # Some servers include the query in raw_path; the ASGI spec excludes it.
        raw_path = raw_path.partition(b"?")[0]
        decoded = unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path
        raw_target = raw_path.decode("latin-1")
    else:
        decoded = scope_bytes(path_text, "path")
        raw_target = quote(decoded, safe=PATH_SAFE)
    root_path: str = scope.get("root_path") or ""
    if decoded[:1] == b"/" or decoded == b"*":
        script_name, path_bytes = split_script_name(root_path, decoded)
    elif path_text == root_path.rstrip("/") + "/" + decoded.decode("utf-8", "surrogateescape"):
        # A relative target (werkzeug's "foo" under "/app", kept by `build_scope`) comes back.
        script_name = scope_bytes(root_path.rstrip("/"), "root_path").decode("latin-1")
        path_bytes = decoded
    else:
        # A relative raw_path that is not path below root_path (mounted deeper since).
        script_name, path_bytes = split_script_name(root_path, scope_bytes(path_text, "path"))
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
            # The adapter's input ends with the body (the mod_wsgi / gunicorn extension).
            "wsgi.input_terminated": True,
            "asgi.scope": scope,
        }
    )
    return environ
