"""Header translation between ASGI byte pairs and WSGI environ keys / response header lists.

Pure functions: no threads, no asyncio, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from crossgate.exceptions import AppProtocolError, PeerProtocolError

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "encode_response_headers",
    "environ_headers",
    "header_environ_key",
]

DEFAULT_MAX_HEADERS = 100

# RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 section 5.5: CR, LF and NUL are never valid in a field value; letting them through
# would let an application (or the data it echoes) inject headers or split the response.
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")

# Header name -> environ key. The set of header names a deployment sees is small, so caching
# the translation keeps the hot path to one dictionary lookup per header. Bounded so that a
# client sending random names cannot grow it without limit.
_KEY_CACHE: dict[bytes, str] = {
    b"content-type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
}
_KEY_CACHE_MAX = 512
_CGI_LOOKALIKES = frozenset({b"content_type", b"content_length"})


def header_environ_key(name: bytes) -> str:
    """Return the PEP 3333 environ key for a lower-case ASGI header name.

    ``content-type`` and ``content-length`` map to ``CONTENT_TYPE`` and ``CONTENT_LENGTH``
    (PEP 3333, "environ Variables": they are CGI variables, with no ``HTTP_`` prefix); every
    other name maps to ``HTTP_`` plus the name upper-cased with ``-`` turned into ``_``.
    """
    key = _KEY_CACHE.get(name)
    if key is None:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_KEY_CACHE) < _KEY_CACHE_MAX:
            _KEY_CACHE[name] = key
    return key


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
        if max_headers is not None and count > max_headers:
            raise PeerProtocolError(f"request has more than {max_headers} headers", status_code=431)
        # Even when kept, "content_type" must not pose as Content-Type: PEP 3333 reserves
        # CONTENT_TYPE / CONTENT_LENGTH, and HTTP_CONTENT_* keys are forbidden.
        if b"_" in name and (not keep_underscores or name in _CGI_LOOKALIKES):
            continue
        key = header_environ_key(name)
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
    if length is not None and not (length.isascii() and length.isdigit()):
        raise PeerProtocolError(f"invalid Content-Length header: {length!r}")
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
