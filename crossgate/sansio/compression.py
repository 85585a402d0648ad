"""Deprecated alias of `crossgate.sansio.gzip` and `crossgate.sansio.gzip_codec`."""

import warnings

from crossgate.sansio import gzip, gzip_codec
from crossgate.sansio.gzip import *  # noqa: F403
from crossgate.sansio.gzip_codec import *  # noqa: F403

__all__ = [*gzip.__all__, *gzip_codec.__all__]
warnings.warn("crossgate.sansio.compression is now crossgate.sansio.gzip", DeprecationWarning, 2)
