"""The compressor `crossgate.middleware.gzip` uses: gzip (or brotli), flushed per chunk. Pure.

`Compressor` turns a body into the coding chunk by chunk, flushing after each chunk so a streamed
response (long polls, progress output) is never held back by the compressor. zlib and brotli
objects are plain computation, so they live in `crossgate.sansio`. brotli is optional: it is
used when the `brotli` package imports (`brotli_available`).
"""

from __future__ import annotations

import importlib
import struct
import zlib
from collections.abc import Iterable
from typing import Protocol, cast

__all__ = ["Compressor", "brotli_available", "compress_whole", "padded_gzip_header"]


class _BrotliCompressor(Protocol):
    def process(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...
    def finish(self) -> bytes: ...


class _BrotliModule(Protocol):
    # Only the quality is used; the name is brotli's.
    def Compressor(self, *, quality: int) -> _BrotliCompressor: ...


def _load_brotli() -> _BrotliModule | None:
    # The brotli package ships no type information; importing it by name and describing the
    # little used of it with a Protocol keeps mypy strict without an ignore.
    try:
        return cast(_BrotliModule, importlib.import_module("brotli"))
    except ImportError:
        return None


_brotli = _load_brotli()


def brotli_available() -> bool:
    """Whether the `brotli` package imported, so ``br`` can be offered."""
    return _brotli is not None


# RFC 1952 section 2.3: ID1 ID2 CM(deflate) FLG MTIME(4) XFL OS(255: unknown), FLG = FNAME.
_GZIP_FNAME_HEADER = b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\xff"


def padded_gzip_header(padding: int) -> bytes:
    """A gzip member header (RFC 1952) whose FNAME field holds ``padding`` bytes.

    The padding Django 4.2+ adds against BREACH ("Heal the Breach", Paulsen et al.): the
    compressed length of a response then varies by up to the padding's range from one
    response to the next, so an attacker who measures lengths to guess a secret byte by byte
    needs many more requests per guess. Decoders skip the name; ``a`` bytes compress nothing
    away and hold no information.

    Raises:
        ValueError: ``padding`` is negative.
    """
    if padding < 0:
        raise ValueError(f"padding must be 0 or more, not {padding}")
    return _GZIP_FNAME_HEADER + b"a" * padding + b"\x00"


class Compressor:
    """Compresses one response body chunk by chunk in ``gzip`` or ``br``.

    `chunk` returns everything the chunk compresses to, flushed (zlib ``Z_SYNC_FLUSH``, brotli
    ``flush()``), so the client can decode it at once; `last` ends the stream. The cost of the
    flush is a few bytes per chunk, the price of never holding a streamed response back.

    ``padding`` (gzip only) puts that many bytes in the gzip header's file name field
    (`padded_gzip_header`); the shell draws it at random for each response. ``None`` writes
    zlib's plain header.

    Raises:
        ValueError: an unknown ``coding``, ``br`` when `brotli_available` is false, an
            out-of-range level, or ``padding`` with ``br`` (brotli has no field to put it in).
    """

    __slots__ = ("_brotli", "_crc", "_header", "_size", "_zlib", "coding")

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
        # With padding: the header still to send, and the CRC-32 and size of the data so far
        # for the RFC 1952 trailer, which a raw deflate stream leaves to us.
        self._header: bytes | None = None
        self._crc = 0
        self._size = 0
        if coding == "gzip":
            if not 0 <= level <= 9:
                raise ValueError(f"compresslevel must be between 0 and 9, not {level}")
            if padding is None:
                # wbits 16 + MAX_WBITS writes the gzip header and trailer (RFC 1952) around
                # the deflate stream (zlib manual, deflateInit2).
                self._zlib = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            else:
                # Negative wbits: a raw deflate stream, framed here with a padded header.
                self._header = padded_gzip_header(padding)
                self._zlib = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        elif padding is not None:
            raise ValueError(f"padding is for gzip only, not {coding!r}")
        elif coding == "br":
            if _brotli is None:
                raise ValueError("the brotli package is not installed: pip install brotli")
            if not 0 <= brotli_quality <= 11:
                raise ValueError(f"brotli_quality must be between 0 and 11, not {brotli_quality}")
            self._brotli = _brotli.Compressor(quality=brotli_quality)
        else:
            raise ValueError(f"unknown content coding {coding!r}; use 'gzip' or 'br'")

    def _framed(self, data: bytes, out: bytes) -> bytes:
        """``out`` (deflated ``data``) with the padded header in front the first time."""
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        header = self._header
        if not header:  # sent already
            return out
        self._header = b""
        return header + out

    def chunk(self, data: bytes) -> bytes:
        """Compress ``data`` and flush; ``b""`` for an empty chunk (nothing to flush)."""
        if not data:
            return b""
        if self._zlib is not None:
            out = self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
            return out if self._header is None else self._framed(data, out)
        brotli = cast(_BrotliCompressor, self._brotli)
        return brotli.process(data) + brotli.flush()

    def feed(self, data: bytes) -> bytes:
        """Compress ``data`` without flushing: for a body known whole, where nothing waits."""
        if self._zlib is not None:
            out = self._zlib.compress(data)
            return out if self._header is None else self._framed(data, out)
        return cast(_BrotliCompressor, self._brotli).process(data)

    def last(self, data: bytes = b"") -> bytes:
        """Compress ``data`` and end the stream; nothing may follow."""
        if self._zlib is not None:
            out = self._zlib.compress(data) + self._zlib.flush(zlib.Z_FINISH)
            if self._header is None:
                return out
            # RFC 1952 section 2.3.1: CRC32 and ISIZE (the size modulo 2**32), little-endian.
            out = self._framed(data, out)
            return out + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)
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
    """Compress a body that is all known (a WSGI list, or one complete ASGI message) at once.

    Raises:
        ValueError: see `Compressor`.
    """
    compressor = Compressor(coding, level=level, brotli_quality=brotli_quality, padding=padding)
    return b"".join([*(compressor.feed(p) for p in parts), compressor.last()])
