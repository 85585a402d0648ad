"""Deprecated alias of `crossgate.sansio.gzip`, renamed after the middleware it serves."""

import warnings

from crossgate.sansio.gzip import *  # noqa: F403
from crossgate.sansio.gzip import __all__ as __all__

warnings.warn(
    "crossgate.sansio.compression is now crossgate.sansio.gzip: import from there",
    DeprecationWarning,
    stacklevel=2,
)
