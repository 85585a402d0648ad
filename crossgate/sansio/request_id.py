"""Request ids and access lines: what `crossgate.middleware.request_id` decides. Pure.

* `accept_request_id`: whether an incoming id can be reused (bounded length, a safe charset:
  the id ends up in response headers and log lines, so CR, LF, control characters, spaces,
  quotes and non-ASCII are refused).
* `new_request_id`: a fresh id (32 hex characters, 128 random bits).
* `access_line`: the one line logged per request, with everything that came from the client
  escaped so a request cannot forge log lines.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import quote

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

# Letters, digits and the punctuation found in common trace ids (UUIDs, AWS X-Ray "Root=1-...",
# W3C trace-context "00-...-01", base64): nothing that could end a header line (RFC 9110 section
# 5.5), nothing a log parser splits on (space, quote), nothing outside ASCII.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:+/=@~-]+")

# Everything outside printable ASCII, plus the quote and backslash that delimit and escape the
# fields of an access line.
_UNSAFE_LOG = re.compile(r'[^\x20-\x7e]|["\\]')


def accept_request_id(
    value: bytes | str | None, *, max_length: int = DEFAULT_MAX_ID_LENGTH
) -> str | None:
    """``value`` as a ``str`` when it is a usable request id, else ``None``.

    Usable means 1 to ``max_length`` characters from ``A-Z a-z 0-9 . _ : + / = @ ~ -``.
    Anything else (CR/LF, other control characters, spaces, non-ASCII, too long, empty) is
    refused, and the caller makes a fresh id: a client must not be able to inject a header or a
    log line through it.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        if len(value) > max_length or not value.isascii():
            return None
        text = value.decode("ascii")
    else:
        text = value
    if len(text) > max_length or not _SAFE_ID.fullmatch(text):
        return None
    return text


def new_request_id() -> str:
    """A fresh request id: 32 lower-case hex characters, 128 bits from `secrets.token_hex`.

    As unguessable as a UUID4's 122 random bits and the same length as its hex form, at a
    third of the cost (no `uuid.UUID` object is built).
    """
    return secrets.token_hex(16)


def log_safe(text: str) -> str:
    """``text`` with everything outside printable ASCII, ``"`` and ``\\`` escaped.

    Non-printable and non-ASCII characters become ``\\xNN`` / ``\\uNNNN`` (a WSGI path holds
    bytes as latin-1 characters, so each byte becomes ``\\xNN``); so a path holding ``%0d%0a``
    decoded, or a quote, cannot start a new log line or end a field early.
    """
    if _UNSAFE_LOG.search(text) is None:
        return text
    return _UNSAFE_LOG.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in '"\\':
        return "\\" + char
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


# RFC 3986 section 3.3: the characters a path segment holds unencoded, besides unreserved ones.
_PATH_SAFE = "/:@!$&'()*+,;="
# What quote(..., safe=_PATH_SAFE + "%") leaves as it is, and (without "%", which a decoded
# WSGI path holds only where the wire had "%25") what quote(..., safe=_PATH_SAFE) does.
_CLEAN_PATH = re.compile(rb"[A-Za-z0-9_.~\-/:@!$&'()*+,;=%]*")
_CLEAN_TEXT = re.compile(r"[A-Za-z0-9_.~\-/:@!$&'()*+,;=]*")


def wsgi_target(script_name: str, path_info: str) -> str:
    """The path of a WSGI request percent-encoded again, as the client sent it on the wire.

    PEP 3333 ("Unicode Issues") carries the decoded path bytes as latin-1 characters; encoding
    them back gives the same text as an ASGI ``raw_path``, so both sides log the same line.
    """
    path = script_name + path_info
    if _CLEAN_TEXT.fullmatch(path):
        return path  # the common case, without quote()'s per-byte loop
    return quote(path.encode("latin-1", "backslashreplace"), safe=_PATH_SAFE)


def asgi_target(raw_path: bytes) -> str:
    """An ASGI ``raw_path`` as logged: its percent-escapes kept, anything else unsafe escaped.

    A server hands over the path bytes as received; a few (and test clients) pass raw
    non-ASCII bytes or spaces. Escaping those the way `wsgi_target` does makes both sides log
    the same text for the same request.
    """
    if _CLEAN_PATH.fullmatch(raw_path):
        return raw_path.decode("ascii")  # the common case, without quote()'s per-byte loop
    return quote(raw_path, safe=_PATH_SAFE + "%")


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

    ``client`` is ``host:port`` (``-`` when unknown), ``sent`` the response body bytes,
    ``outcome`` empty for a complete response, else what happened (``"client disconnected"``,
    ``"app error"``, ``"incomplete"``). Client-supplied parts are escaped with `log_safe`.
    """
    target = f"{path}?{query}" if query else path
    request = log_safe(f"{method} {target} HTTP/{http_version}")
    line = (
        f'{log_safe(client) if client else "-"} - "{request}" {status} {sent} '
        f"{duration_ms:.2f}ms id={request_id}"
    )
    return f"{line} ({outcome})" if outcome else line
