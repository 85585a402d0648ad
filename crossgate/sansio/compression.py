"""Deprecated alias of `crossgate.sansio.gzip` and `crossgate.sansio.gzip_codec`.

Renamed after the middleware they serve; the compressor has a module of its own.
"""

import warnings

from crossgate.sansio.gzip import *  # noqa: F403
from crossgate.sansio.gzip import __all__ as _decision
from crossgate.sansio.gzip_codec import *  # noqa: F403
from crossgate.sansio.gzip_codec import __all__ as _codec

__all__ = [*_decision, *_codec]

warnings.warn(
    "crossgate.sansio.compression is now crossgate.sansio.gzip (the compressor: "
    "crossgate.sansio.gzip_codec): import from there",
    DeprecationWarning,
    stacklevel=2,
)
