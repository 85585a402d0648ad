"""Header translation between ASGI byte pairs and WSGI environ keys / response header lists.

Pure functions: no threads, no asyncio, no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

from crossgate.exceptions import AppProtocolError, PeerProtocolError

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "MAX_CONTENT_LENGTH_DIGITS",
    "check_header_count",
    "collect_headers",
    "encode_response_headers",
    "environ_headers",
    "header_environ_key",
    "parse_content_length",
    "single_header",
]

# The one header-count cap of both adapters: `WSGIToASGI` (request headers -> environ) and
# `ASGIToWSGI` (environ -> scope) answer 431 above it (RFC 6585 section 5). 100 is gunicorn's
# default ``limit_request_fields``; a2wsgi and uvicorn with httptools have none.
DEFAULT_MAX_HEADERS = 100

# A Content-Length of 20 digits is already past 2**64 bytes; far longer ones are refused before
# int() sees them (CPython refuses to convert more than 4300 digits with a ValueError, and the
# conversion costs time quadratic in the digits).
MAX_CONTENT_LENGTH_DIGITS = 64

# RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_BYTES = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 section 5.5: CR, LF and NUL are never valid in a field value; letting them through
# would let an application (or the data it echoes) inject headers or split the response.
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")

# PEP 3333, "environ Variables": the two CGI variables that have no HTTP_ prefix.
_CGI_KEYS = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_CGI_LOOKALIKES = frozenset({b"content_type", b"content_length"})


# The header names a deployment sees are few: cached, a translation is one lookup (80 ns a
# header against 520 ns computed, in-process). Bounded, so random names cannot grow it.
@functools.lru_cache(maxsize=512)
def header_environ_key(name: bytes) -> str | None:
    """Return the PEP 3333 environ key for a lower-case ASGI header name, ``None`` for none.

    ``content-type`` and ``content-length`` map to ``CONTENT_TYPE`` and ``CONTENT_LENGTH``
    (PEP 3333, "environ Variables": they are CGI variables, with no ``HTTP_`` prefix); every
    other name maps to ``HTTP_`` plus the name upper-cased with ``-`` turned into ``_``.

    A name that is not an RFC 9110 token (section 5.6.2) gets no key: ``None``. The bytes are
    upper-cased, ASCII letters only, never the latin-1 text: ``str.upper()`` folds ``\xdf``
    into ``SS`` and ``\xff`` into a character outside latin-1, so ``x-forwarded-\xdfl`` would
    pose as ``HTTP_X_FORWARDED_SSL`` (what Django's ``SECURE_PROXY_SSL_HEADER`` reads) and
    ``x-\xff`` would make a key PEP 3333 forbids. h11, httptools and nginx refuse such names
    before they arrive; this does not depend on it.
    """
    key = _CGI_KEYS.get(name)
    if key is not None:
        return key
    if not _TOKEN_BYTES.fullmatch(name):
        return None
    return "HTTP_" + name.upper().replace(b"-", b"_").decode("ascii")


def check_header_count(count: int, max_headers: int | None) -> None:
    """Refuse a request with more than ``max_headers`` headers (``None``: no cap).

    Raises:
        PeerProtocolError: status 431 (RFC 6585 section 5), the same in both adapters.
    """
    if max_headers is not None and count > max_headers:
        raise PeerProtocolError(f"request has more than {max_headers} headers", status_code=431)


def parse_content_length(values: Iterable[bytes]) -> int | None:
    """The body length the ``Content-Length`` values of one message declare, ``None`` for none.

    The one rule for Content-Length in crossgate: each value is 1 to 64 ASCII digits (no sign,
    no whitespace: strip a header value's surrounding whitespace first), and
    repeated values must agree (RFC 9110 section 8.6 allows a recipient to accept identical
    repeats; anything else is an unrecoverable framing error, RFC 9112 section 6.3).

    Raises:
        AppProtocolError: a value is not such a number, or two values differ. Callers that
            judge a request rather than a response turn it into a `PeerProtocolError`.
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
    """The value of header ``name`` (lower-case), as latin-1 text; ``None`` when absent.

    For headers that must appear once (``Host``, RFC 9112 section 3.2; ``Origin``, RFC 6454
    section 7.3): reading stops at the second line, whatever follows, and both values are
    returned joined with ``,`` as a WSGI server would join them, so that the policies refuse
    them alike on both sides. 100,000 ``Host`` lines cost two values, not 100,000.
    """
    found: bytes | None = None
    for key, value in headers:
        if key == name:
            if found is not None:
                return f"{found.decode('latin-1')},{value.decode('latin-1')}"
            found = value
    return None if found is None else found.decode("latin-1")


def collect_headers(headers: Iterable[Sequence[bytes]], names: Iterable[bytes]) -> dict[str, str]:
    """The values of the list headers ``names`` (lower-case), by latin-1 name.

    Repeated lines are one list (RFC 9110 section 5.3), joined with ``,`` in one pass at the
    end: time linear in the size of the headers, where joining line by line is quadratic
    (100,000 ``X-Forwarded-For`` lines of a few bytes were 0.7 s of CPU).
    """
    wanted = frozenset(names)
    parts: dict[bytes, list[bytes]] = {}
    for key, value in headers:
        if key in wanted:
            found = parts.get(key)
            if found is None:
                parts[key] = [value]
            else:
                found.append(value)
    return {
        key.decode("latin-1"): b",".join(values).decode("latin-1") for key, values in parts.items()
    }


def environ_headers(
    headers: Iterable[Sequence[bytes]],
    *,
    keep_underscores: bool = False,
    max_headers: int | None = DEFAULT_MAX_HEADERS,
) -> dict[str, str]:
    """Translate ASGI request headers into environ entries.

    * Names containing ``_`` are dropped unless ``keep_underscores`` is true: in the environ,
      ``X-Under`` and ``X_Under`` both become ``HTTP_X_UNDER``, so a client could spoof a header
      a trusted proxy sets. gunicorn 22+, nginx and Django drop them for the same reason.
    * Repeated headers are joined with ``", "`` (RFC 9110 section 5.3), except ``Cookie``, which
      is joined with ``"; "`` (RFC 9113 section 8.2.3 / RFC 6265 section 5.4). The join is
      linear in the number of headers.
    * More than ``max_headers`` headers raises `PeerProtocolError` with status 431.

    Raises:
        PeerProtocolError: too many headers (431), or a ``Content-Length`` that is not a
            non-negative integer, or several that disagree (400).
    """
    result: dict[str, str] = {}
    repeated: dict[str, list[str]] | None = None
    count = 0
    for name, value in headers:
        count += 1
        check_header_count(count, max_headers)
        # Even when kept, "content_type" must not pose as Content-Type: PEP 3333 reserves
        # CONTENT_TYPE / CONTENT_LENGTH, and HTTP_CONTENT_* keys are forbidden.
        if b"_" in name and (not keep_underscores or name in _CGI_LOOKALIKES):
            continue
        key = header_environ_key(name)
        if key is None:
            continue  # not an RFC 9110 token: no environ key may stand for it
        text = value.decode("latin-1")
        if key in result:
            if repeated is None:
                repeated = {}
            parts = repeated.get(key)
            if parts is None:
                repeated[key] = parts = [result[key]]
            parts.append(text)
        else:
            result[key] = text
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
            parse_content_length((length.encode("latin-1"),))  # the one Content-Length rule
        except AppProtocolError:
            raise PeerProtocolError(f"invalid Content-Length header: {length!r}") from None
    return result


def encode_response_headers(headers: object) -> list[tuple[bytes, bytes]]:
    """Validate WSGI response headers and encode them as ASGI byte pairs.

    PEP 3333 ("The start_response() Callable") asks for a list of ``(name, value)`` tuples of
    native strings holding only latin-1 code points. Like gunicorn, any list or tuple of
    two-item lists or tuples is accepted, so an app that runs there runs here; the strings are
    checked strictly. Names are lower-cased, as the ASGI spec requires for
    ``http.response.start``.

    Raises:
        AppProtocolError: the headers are not such a list, a name is not an RFC 9110 token, or a
            value holds CR, LF or NUL (header injection) or a character outside latin-1.
    """
    if not isinstance(headers, list | tuple):
        raise AppProtocolError(
            f"response headers must be a list of (name, value) tuples, not {type(headers).__name__}"
        )
    encoded: list[tuple[bytes, bytes]] = []
    for item in headers:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise AppProtocolError(f"response header must be a (name, value) tuple: {item!r}")
        name, value = item
        if type(name) is not str or type(value) is not str:
            raise AppProtocolError(f"response header name and value must be str: {item!r}")
        if not _TOKEN.fullmatch(name):
            raise AppProtocolError(f"invalid response header name: {name!r}")
        if _FORBIDDEN_IN_VALUE.search(value):
            raise AppProtocolError(
                f"response header {name!r} has a CR, LF or NUL in its value (header injection)"
            )
        # RFC 9110 section 5.5: a field value has no leading or trailing whitespace, and h11
        # refuses one that does. Django's cookies come out as " name=value", so strip, as
        # gunicorn does.
        value = value.strip(" \t")
        try:
            encoded.append((name.lower().encode("ascii"), value.encode("latin-1")))
        except UnicodeEncodeError:
            raise AppProtocolError(
                f"response header {name!r} has characters outside latin-1; "
                "PEP 3333 requires encoding them first (RFC 8187 or percent-encoding)"
            ) from None
    return encoded
