"""Request ids and access lines: what `crossgate.middleware.request_id` decides. Pure.

An incoming id is reused only when short and of a safe charset (it ends up in headers and log
lines), and everything from the client is escaped in the access line, so no request can forge
a header or a log line.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import quote

from crossgate.sansio.paths import PATH_SAFE

__all__ = [
    "DEFAULT_MAX_ID_LENGTH",
    "accept_request_id",
    "access_line",
    "asgi_target",
    "log_safe",
    "new_request_id",
    "wsgi_target",
]

DEFAULT_MAX_ID_LENGTH = 128

# The characters of common trace ids (UUIDs, AWS X-Ray, W3C trace-context, base64): nothing that
# ends a header line (RFC 9110 section 5.5) or a log field, nothing outside ASCII.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:+/=@~-]+")

# Outside printable ASCII, and the quote and backslash that delimit an access line's fields.
_UNSAFE_LOG = re.compile(r'[^\x20-\x7e]|["\\]')


def accept_request_id(
    value: bytes | str | None, *, max_length: int = DEFAULT_MAX_ID_LENGTH
) -> str | None:
    """``value`` as a ``str`` when it is a usable request id (1 to ``max_length`` characters
    from ``A-Z a-z 0-9 . _ : + / = @ ~ -``), else ``None``: the caller makes a fresh one."""
    if value is None:
        return None
    # latin-1 never fails; a non-ASCII character then fails the pattern.
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if len(text) > max_length or not _SAFE_ID.fullmatch(text):
        return None
    return text


def new_request_id() -> str:
    """A fresh request id: 32 hex characters, 128 random bits (a UUID4's length, a third of
    its cost)."""
    return secrets.token_hex(16)


def log_safe(text: str) -> str:
    """``text`` with everything outside printable ASCII (as ``\\xNN`` / ``\\uNNNN``), ``"``
    and ``\\`` escaped, so no decoded CR LF or quote can start a log line or end a field."""
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
    """The path of a WSGI request percent-encoded again, as the client sent it, so both sides
    log the same line (PEP 3333 carries the decoded bytes as latin-1)."""
    path = script_name + path_info
    if _CLEAN_TEXT.fullmatch(path):
        return path  # the common case, without quote()'s per-byte loop
    return quote(path.encode("latin-1", "backslashreplace"), safe=PATH_SAFE)


def asgi_target(raw_path: bytes) -> str:
    """An ASGI ``raw_path`` as logged: its percent-escapes kept, other unsafe bytes escaped as
    `wsgi_target` escapes them."""
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
    """The access line for one request, in the common shape of uvicorn's and nginx's::

        127.0.0.1:50000 - "GET /path?q=1 HTTP/1.1" 200 1234 3.21ms id=4f0c... [outcome]

    ``client`` is ``host:port`` or ``None``, ``outcome`` what happened (empty when complete);
    client-supplied parts are escaped with `log_safe`.
    """
    target = f"{path}?{query}" if query else path
    request = log_safe(f"{method} {target} HTTP/{http_version}")
    line = (
        f'{log_safe(client) if client else "-"} - "{request}" {status} {sent} '
        f"{duration_ms:.2f}ms id={request_id}"
    )
    return f"{line} ({outcome})" if outcome else line
