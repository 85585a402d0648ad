"""Decoders for the compression tests: gzip from the standard library, brotli from the package.

The `brotli` package ships no type information; it is imported by name and described by a
`Protocol`, as ``crossgate.sansio.gzip_codec`` does, so the tests stay ``mypy --strict`` clean.
"""

from __future__ import annotations

import importlib
import zlib
from typing import Protocol, cast

__all__ = ["Decoder", "decode"]


class _BrotliDecompressor(Protocol):
    def process(self, data: bytes) -> bytes: ...


class _Brotli(Protocol):
    def Decompressor(self) -> _BrotliDecompressor: ...
    def decompress(self, data: bytes) -> bytes: ...


_brotli = cast(_Brotli, importlib.import_module("brotli"))


class Decoder:
    """Decodes a ``gzip`` or ``br`` stream piece by piece, as a client does."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS) if coding == "gzip" else None
        self._brotli = _brotli.Decompressor() if coding == "br" else None
        if self._zlib is None and self._brotli is None:
            raise ValueError(f"no decoder for {coding!r}")

    def feed(self, data: bytes) -> bytes:
        """Everything ``data`` decodes to now."""
        if self._zlib is not None:
            return self._zlib.decompress(data)
        assert self._brotli is not None
        return bytes(self._brotli.process(data))


def decode(coding: str | None, data: bytes) -> bytes:
    """The whole body ``data`` decoded from ``coding`` (``None``: as is)."""
    if coding is None:
        return data
    if coding == "br":
        return bytes(_brotli.decompress(data))
    return zlib.decompress(data, 16 + zlib.MAX_WBITS)
