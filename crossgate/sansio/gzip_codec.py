"""The compressor of `crossgate.middleware.gzip`: gzip, or brotli when it imports. Pure."""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable, Iterable
from typing import Protocol, cast

__all__ = ["Compressor", "brotli_available", "compress_whole", "padded_gzip_header"]


class _BrotliCompressor(Protocol):
    def process(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...
    def finish(self) -> bytes: ...


def _load_brotli() -> Callable[..., _BrotliCompressor] | None:
    """``brotli.Compressor``, typed here (brotli ships no types), or ``None``."""
    try:
        return cast(
            "Callable[..., _BrotliCompressor]", importlib.import_module("brotli").Compressor
        )
    except ImportError:
        return None


_brotli = _load_brotli()


def brotli_available() -> bool:
    """Whether the `brotli` package imported, so ``br`` can be offered."""
    return _brotli is not None


# RFC 1952 section 2.3: ID1 ID2 CM(deflate) FLG MTIME(4) XFL OS(255: unknown), FLG = FNAME.
_GZIP_FNAME_HEADER = b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\xff"


def padded_gzip_header(padding: int) -> bytes:
    """A gzip member header (RFC 1952) whose FNAME field holds ``padding`` bytes (BREACH).

    Raises:
        ValueError: ``padding`` is negative.
    """
    if padding < 0:
        raise ValueError(f"padding must be 0 or more, not {padding}")
    return _GZIP_FNAME_HEADER + b"a" * padding + b"\x00"


class Compressor:
    """Compresses one response body chunk by chunk in ``gzip`` or ``br``; ``padding`` (gzip
    only) goes into the header's file name field (`padded_gzip_header`).

    Raises:
        ValueError: an unknown ``coding``, ``br`` when `brotli_available` is false, an
            out-of-range level, or ``padding`` with ``br`` (brotli has no field to put it in).
    """

    __slots__ = ("_brotli", "_header", "_zlib", "coding")

    def __init__(
        self,
        coding: str,
        *,
        level: int = 6,
        brotli_quality: int = 4,
        padding: int | None = None,
    ) -> None:
        self.coding = coding
        self._zlib: zlib._Compress | None = None
        self._brotli: _BrotliCompressor | None = None
        self._header: bytes | None = None  # the padded header, until the first output
        if coding == "gzip":
            if not 0 <= level <= 9:
                raise ValueError(f"compresslevel must be between 0 and 9, not {level}")
            if padding is not None:
                self._header = padded_gzip_header(padding)
            # wbits 16 + MAX_WBITS: zlib writes the gzip header and trailer (deflateInit2).
            self._zlib = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        elif padding is not None:
            raise ValueError(f"padding is for gzip only, not {coding!r}")
        elif coding == "br":
            if _brotli is None:
                raise ValueError("the brotli package is not installed: pip install brotli")
            if not 0 <= brotli_quality <= 11:
                raise ValueError(f"brotli_quality must be between 0 and 11, not {brotli_quality}")
            self._brotli = _brotli(quality=brotli_quality)
        else:
            raise ValueError(f"unknown content coding {coding!r}; use 'gzip' or 'br'")

    def _framed(self, out: bytes) -> bytes:
        """The first output, zlib's 10-byte gzip header (its first call writes it whole)
        swapped for the padded one."""
        header = self._header or b""
        self._header = None
        return header + out[10:]

    def chunk(self, data: bytes) -> bytes:
        """Compress ``data`` and flush; ``b""`` for an empty chunk (nothing to flush)."""
        if not data:
            return b""
        if self._zlib is not None:
            out = self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
            return out if self._header is None else self._framed(out)
        brotli = cast(_BrotliCompressor, self._brotli)
        return brotli.process(data) + brotli.flush()

    def feed(self, data: bytes) -> bytes:
        """Compress ``data`` without flushing: for a body known whole, where nothing waits."""
        if self._zlib is not None:
            out = self._zlib.compress(data)
            return out if self._header is None else self._framed(out)
        return cast(_BrotliCompressor, self._brotli).process(data)

    def last(self, data: bytes = b"") -> bytes:
        """Compress ``data`` and end the stream; nothing may follow."""
        if self._zlib is not None:
            out = self._zlib.compress(data) + self._zlib.flush(zlib.Z_FINISH)
            return out if self._header is None else self._framed(out)
        brotli = cast(_BrotliCompressor, self._brotli)
        return brotli.process(data) + brotli.finish()


def compress_whole(
    coding: str,
    parts: Iterable[bytes],
    *,
    level: int,
    brotli_quality: int,
    padding: int | None = None,
) -> bytes:
    """Compress a body that is all known at once.

    Raises:
        ValueError: see `Compressor`.
    """
    compressor = Compressor(coding, level=level, brotli_quality=brotli_quality, padding=padding)
    return b"".join([*map(compressor.feed, parts), compressor.last()])
