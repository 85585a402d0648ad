"""The options `GZip` and `WSGIGZip` share: declared, checked and applied once."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import AnyStr, Generic

from crossgate.middleware._common import App
from crossgate.sansio.gzip import (
    DEFAULT_EXCLUDED_TYPES,
    Action,
    Plan,
    compresses_at,
    plan_response,
    response_facts,
)
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

    def plan(
        self,
        status: int,
        headers: Iterable[tuple[AnyStr, AnyStr]],
        method: str,
        coding: str | None,
        *,
        trailers: bool = False,
        wait: bool = False,
    ) -> Plan:
        """What to do with a response (`crossgate.sansio.gzip.plan_response`)."""
        return plan_response(
            response_facts(status, headers, trailers=trailers),
            method=method,
            coding=coding,
            minimum_size=self.minimum_size,
            excluded_types=self.excluded_types,
            wait_for_body=wait,
        )

    def coding_for(self, plan: Plan, size: int, *, complete: bool) -> str | None:
        """The coding for a body whose first ``size`` bytes are here (``complete``: all of
        it), or ``None`` to send it as is."""
        if plan.action is Action.WAIT and not compresses_at(
            size, complete=complete, minimum_size=self.minimum_size
        ):
            return None
        return plan.coding  # None unless the plan is to compress or to wait

    def compressor(self, coding: str) -> Compressor:
        limit = self.max_random_bytes
        return Compressor(
            coding,
            level=self.compresslevel,
            brotli_quality=self.brotli_quality,
            # A fresh random padding length for each response (0 to max_random_bytes).
            padding=secrets.randbelow(limit + 1) if limit else None,
        )

    def whole(self, coding: str, parts: Iterable[bytes]) -> bytes:
        """A body known whole, compressed in one piece."""
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
