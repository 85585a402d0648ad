"""Header translation between ASGI byte pairs and WSGI environ keys / header lists. Pure."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

from crossgate.exceptions import AppProtocolError, PeerProtocolError

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "MAX_CONTENT_LENGTH_DIGITS",
    "TOKEN",
    "TOKEN_BYTES",
    "check_header_count",
    "collect_headers",
    "encode_response_headers",
    "environ_headers",
    "header_environ_key",
    "parse_content_length",
    "single_header",
]

# Both adapters answer 431 above it (RFC 6585 section 5); gunicorn's ``limit_request_fields``.
DEFAULT_MAX_HEADERS = 100

# 20 digits are past 2**64 bytes; longer values never reach int() (quadratic, 4300-digit limit).
MAX_CONTENT_LENGTH_DIGITS = 64

# RFC 9110 section 5.6.2: a field name is a token (ASCII only).
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
TOKEN_BYTES = re.compile(TOKEN.pattern.encode("ascii"))
# RFC 9110 section 5.5: CR, LF and NUL in a value would let the app inject headers.
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")

# PEP 3333: the two CGI variables without an HTTP_ prefix.
_CGI_KEYS = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_CGI_LOOKALIKES = frozenset({b"content_type", b"content_length"})


@functools.lru_cache(maxsize=512)
def header_environ_key(name: bytes) -> str | None:
    """Return the PEP 3333 environ key for a lower-case ASGI header name; ``None`` for a non-token.
    Upper-cased as bytes: ``str.upper()`` turns ``x-forwarded-\xdfl`` into ``..._SSL``."""
    key = _CGI_KEYS.get(name)
    if key is not None:
        return key
    if not TOKEN_BYTES.fullmatch(name):
        return None
    return "HTTP_" + name.upper().replace(b"-", b"_").decode("ascii")


def check_header_count(count: int, max_headers: int | None) -> None:
    """Refuse a request with more than ``max_headers`` headers (``None``: no cap).

    Raises:
        PeerProtocolError: status 431 (RFC 6585 section 5).
    """
    if max_headers is not None and count > max_headers:
        raise PeerProtocolError(f"request has more than {max_headers} headers", status_code=431)


def parse_content_length(values: Iterable[bytes]) -> int | None:
    """The body length ``Content-Length`` values (stripped) declare, ``None`` for none.

    Raises:
        AppProtocolError: a value is not 1 to 64 ASCII digits, or two differ (RFC 9110 8.6).
    """
    if type(values) is list and len(values) == 1:  # the usual case, for every response
        value = values[0]
        if 0 < len(value) <= MAX_CONTENT_LENGTH_DIGITS and value.isdigit():
            return int(value)
    length: int | None = None
    for value in values:
        # bytes.isdigit() is ASCII only: no "\u0665" (Arabic-Indic five) gets through.
        if not (0 < len(value) <= MAX_CONTENT_LENGTH_DIGITS and value.isdigit()):
            raise AppProtocolError(f"invalid Content-Length: {value!r}")
        number = int(value)
        if length is not None and number != length:
            raise AppProtocolError(f"conflicting Content-Length values: {length} and {number}")
        length = number
    return length


def single_header(headers: Iterable[Sequence[bytes]], name: bytes) -> str | None:
    """The value of header ``name`` (lower-case) as latin-1 text, repeats joined with ``,``."""
    found: bytes | None = None
    for key, value in headers:
        if key == name:
            if found is not None:
                return f"{found.decode('latin-1')},{value.decode('latin-1')}"
            found = value
    return None if found is None else found.decode("latin-1")


def collect_headers(headers: Iterable[Sequence[bytes]], names: Iterable[bytes]) -> dict[str, str]:
    """The values of headers ``names`` (lower-case), by latin-1 name, repeats joined by ``,``."""
    wanted = frozenset(names)
    parts: dict[bytes, list[bytes]] = {}
    for key, value in headers:
        if key in wanted:
            parts.setdefault(key, []).append(value)
    return {
        key.decode("latin-1"): b",".join(values).decode("latin-1") for key, values in parts.items()
    }


def environ_headers(
    headers: Iterable[Sequence[bytes]],
    *,
    keep_underscores: bool = False,
    max_headers: int | None = DEFAULT_MAX_HEADERS,
) -> dict[str, str]:
    """Translate ASGI request headers into environ entries (docs/wsgi-to-asgi.md has the rules).

    Raises:
        PeerProtocolError: too many headers (431), a bad or conflicting Content-Length (400).
    """
    result: dict[str, str] = {}
    repeated: dict[str, list[str]] | None = None
    count = 0
    for name, value in headers:
        count += 1
        check_header_count(count, max_headers)
        # Even when kept, "content_type" must not pose as Content-Type (PEP 3333).
        if b"_" in name and (not keep_underscores or name in _CGI_LOOKALIKES):
            continue
        key = header_environ_key(name)
        if key is None:
            continue
        if key not in result:
            result[key] = value.decode("latin-1")
        else:
            repeated = repeated or {}
            repeated.setdefault(key, [result[key]]).append(value.decode("latin-1"))
    if repeated:
        for key, parts in repeated.items():
            if key == "CONTENT_LENGTH":
                if len(set(parts)) != 1:
                    raise PeerProtocolError("conflicting Content-Length headers")
                result[key] = parts[0]
            else:
                result[key] = ("; " if key == "HTTP_COOKIE" else ", ").join(parts)
    length = result.get("CONTENT_LENGTH")
    if length is not None:
        try:
            parse_content_length((length.encode("latin-1"),))
        except AppProtocolError:
            raise PeerProtocolError(f"invalid Content-Length header: {length!r}") from None
    return result


# (name, value) as an app gave it -> its checked ASGI pair; cleared when full. Most apps send
# the same few headers on every response: each is checked once, not once per response.
_ENCODED: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_ENCODED_MAX = 1024


def encode_response_headers(headers: object) -> list[tuple[bytes, bytes]]:
    """Encode WSGI response headers (``str`` pairs) as ASGI byte pairs, names lower-cased.

    Raises:
        AppProtocolError: not a list of pairs, a name no token, a CR, LF, NUL or non-latin-1.
    """
    if not isinstance(headers, list | tuple):
        raise AppProtocolError(
            f"response headers must be a list of (name, value) tuples, not {type(headers).__name__}"
        )
    encoded: list[tuple[bytes, bytes]] = []
    known = _ENCODED.get
    for item in headers:
        try:
            pair = known(item)
        except TypeError:  # unhashable (a list): _encode_pair checks it
            pair = None
        encoded.append(pair or _encode_pair(item))
    return encoded


def _encode_pair(item: object) -> tuple[bytes, bytes]:
    if not isinstance(item, tuple | list) or len(item) != 2:
        raise AppProtocolError(f"response header must be a (name, value) tuple: {item!r}")
    name, value = item
    if type(name) is not str or type(value) is not str:
        raise AppProtocolError(f"response header name and value must be str: {item!r}")
    if not TOKEN.fullmatch(name):
        raise AppProtocolError(f"invalid response header name: {name!r}")
    if _FORBIDDEN_IN_VALUE.search(value):
        raise AppProtocolError(
            f"response header {name!r} has a CR, LF or NUL in its value (header injection)"
        )
    try:
        # RFC 9110 section 5.5: no surrounding whitespace (Django's cookies have it).
        pair = (name.lower().encode("ascii"), value.strip(" \t").encode("latin-1"))
    except UnicodeEncodeError:
        raise AppProtocolError(
            f"response header {name!r} has characters outside latin-1; "
            "PEP 3333 requires encoding them first (RFC 8187 or percent-encoding)"
        ) from None
    if type(item) is tuple:
        if len(_ENCODED) >= _ENCODED_MAX:
            _ENCODED.clear()
        _ENCODED[name, value] = pair
    return pair
