"""The options `GZip` and `WSGIGZip` share: declared, checked and applied once."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic

from crossgate.middleware._common import App
from crossgate.sansio.gzip import DEFAULT_EXCLUDED_TYPES, Plan, ResponseFacts, plan_response
from crossgate.sansio.gzip_codec import Compressor, brotli_available

__all__ = ["GZipBase", "GZipOptions"]


@dataclass(frozen=True, slots=True)
class GZipOptions:
    """The checked options of one `GZip` or `WSGIGZip`, and what both sides do with them.

    ``codings`` are the codings offered, in server preference order: brotli compresses text
    smaller than gzip, so ``br`` comes first on equal q-values.
    """

    minimum_size: int
    compresslevel: int
    brotli_quality: int
    max_random_bytes: int
    codings: tuple[str, ...]
    excluded_types: frozenset[str]

    def plan(self, facts: ResponseFacts, method: str, coding: str | None, wait: bool) -> Plan:
        return plan_response(
            facts,
            method=method,
            coding=coding,
            minimum_size=self.minimum_size,
            excluded_types=self.excluded_types,
            wait_for_body=wait,
        )

    def padding(self) -> int | None:
        """A fresh random padding length for one response (0 to ``max_random_bytes``)."""
        limit = self.max_random_bytes
        return secrets.randbelow(limit + 1) if limit else None

    def compressor(self, coding: str) -> Compressor:
        return Compressor(
            coding,
            level=self.compresslevel,
            brotli_quality=self.brotli_quality,
            padding=self.padding(),
        )

    def whole(self, coding: str, parts: Iterable[bytes]) -> bytes:
        compressor = self.compressor(coding)
        return b"".join([*map(compressor.feed, parts), compressor.last()])


class GZipBase(Generic[App]):
    """The constructor of `GZip` and `WSGIGZip`: the options, in one place for both sides."""

    def __init__(
        self,
        app: App,
        *,
        minimum_size: int = 500,
        compresslevel: int = 6,
        brotli: bool | None = None,
        brotli_quality: int = 4,
        excluded_types: Iterable[str] = DEFAULT_EXCLUDED_TYPES,
        max_random_bytes: int = 0,
    ) -> None:
        if minimum_size < 0:
            raise ValueError(f"minimum_size must be 0 or more, not {minimum_size}")
        if isinstance(max_random_bytes, bool) or max_random_bytes < 0:
            raise ValueError(f"max_random_bytes must be 0 or more, not {max_random_bytes!r}")
        if max_random_bytes and brotli:
            raise ValueError(
                "max_random_bytes pads gzip only (brotli has no field for it): pass brotli=False"
            )
        if not 0 <= compresslevel <= 9:
            raise ValueError(f"compresslevel must be between 0 and 9, not {compresslevel}")
        if not 0 <= brotli_quality <= 11:
            raise ValueError(f"brotli_quality must be between 0 and 11, not {brotli_quality}")
        if brotli and not brotli_available():
            raise ValueError("brotli=True needs the brotli package: pip install brotli")
        # With padding on, br is not offered: a br response would go unpadded.
        use_brotli = (brotli_available() if brotli is None else brotli) and not max_random_bytes
        self.app = app
        self.options = GZipOptions(
            minimum_size,
            compresslevel,
            brotli_quality,
            max_random_bytes,
            ("br", "gzip") if use_brotli else ("gzip",),
            frozenset(t.strip().lower() for t in excluded_types),
        )
