"""Request ids and access lines: what `crossgate.middleware.request_id` decides, so that no
request can forge a header or a log line. Pure."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from crossgate.sansio.paths import PATH_SAFE

__all__ = [
    "DEFAULT_MAX_ID_LENGTH",
    "accept_request_id",
    "access_line",
    "asgi_request_line",
    "asgi_target",
    "log_safe",
    "new_request_id",
    "wsgi_request_line",
    "wsgi_target",
]

DEFAULT_MAX_ID_LENGTH = 128

# Trace ids' characters (UUIDs, X-Ray, W3C trace-context, base64): none ends a header or a field.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:+/=@~-]+")

_UNSAFE_LOG = re.compile(r'[^\x20-\x7e]|["\\]')


def accept_request_id(
    value: bytes | str | None, *, max_length: int = DEFAULT_MAX_ID_LENGTH
) -> str | None:
    """``value`` as a ``str`` when it is a usable request id (1 to ``max_length`` characters
    from ``A-Z a-z 0-9 . _ : + / = @ ~ -``), else ``None``."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if text is None or len(text) > max_length or not _SAFE_ID.fullmatch(text):
        return None
    return text


def new_request_id() -> str:
    """A fresh request id: 32 hex characters, 128 random bits."""
    return secrets.token_hex(16)


def log_safe(text: str) -> str:
    """``text`` with everything outside printable ASCII (as ``\\xNN`` / ``\\uNNNN``), ``"``
    and ``\\`` escaped."""
    if _UNSAFE_LOG.search(text) is None:
        return text
    return _UNSAFE_LOG.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in '"\\':
        return "\\" + char
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


# What quote(..., safe=PATH_SAFE + "%") and quote(..., safe=PATH_SAFE) leave as they are.
_CLEAN_PATH = re.compile(rb"[A-Za-z0-9_.~\-/:@!$&'()*+,;=%]*")
_CLEAN_TEXT = re.compile(r"[A-Za-z0-9_.~\-/:@!$&'()*+,;=]*")


def wsgi_target(script_name: str, path_info: str) -> str:
    """The path of a WSGI request percent-encoded again, as the client sent it."""
    path = script_name + path_info
    if _CLEAN_TEXT.fullmatch(path):
        return path  # the common case, without quote()'s per-byte loop
    return quote(path.encode("latin-1", "backslashreplace"), safe=PATH_SAFE)


def asgi_target(raw_path: bytes) -> str:
    """An ASGI ``raw_path`` as logged: its percent-escapes kept, other unsafe bytes escaped as
    by `wsgi_target`."""
    if _CLEAN_PATH.fullmatch(raw_path):
        return raw_path.decode("ascii")  # the common case, without quote()'s per-byte loop
    return quote(raw_path, safe=PATH_SAFE + "%")


def access_line(
    *,
    client: str | None,
    method: str,
    path: str,
    query: str,
    http_version: str,
    status: int,
    sent: int,
    duration_ms: float,
    request_id: str,
    outcome: str = "",
) -> str:
    """The access line for one request (docs/middleware.md shows it); ``client`` is
    ``host:port`` or ``None``, ``outcome`` empty when complete."""
    target = f"{path}?{query}" if query else path
    request = log_safe(f"{method} {target} HTTP/{http_version}")
    line = (
        f'{log_safe(client) if client else "-"} - "{request}" {status} {sent} '
        f"{duration_ms:.2f}ms id={request_id}"
    )
    return f"{line} ({outcome})" if outcome else line


def asgi_request_line(scope: Mapping[str, Any]) -> dict[str, Any]:
    """The ``client``, ``method``, ``path``, ``query`` and ``http_version`` arguments of
    `access_line` for an ASGI ``http`` or ``websocket`` scope."""
    client = scope.get("client")
    raw_path = scope.get("raw_path")
    return {
        "client": None if not client else f"{client[0]}:{client[1]}",
        "method": scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET",
        "path": asgi_target(raw_path) if raw_path else scope.get("path", ""),
        "query": scope.get("query_string", b"").decode("latin-1"),
        "http_version": scope.get("http_version", "1.1"),
    }


def wsgi_request_line(environ: Mapping[str, Any]) -> dict[str, Any]:
    """`asgi_request_line` for a WSGI environ."""
    address = environ.get("REMOTE_ADDR") or None
    port = environ.get("REMOTE_PORT")
    return {
        "client": f"{address}:{port}" if address and port else address,
        "method": str(environ.get("REQUEST_METHOD", "GET")),
        "path": wsgi_target(environ.get("SCRIPT_NAME", ""), environ.get("PATH_INFO", "")),
        "query": str(environ.get("QUERY_STRING", "")),
        "http_version": str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")).removeprefix("HTTP/"),
    }
