"""Deprecated alias of `crossgate.sansio.gzip` and `crossgate.sansio.gzip_codec`."""

import warnings

from crossgate.sansio.gzip import *  # noqa: F403
from crossgate.sansio.gzip import __all__ as _decision
from crossgate.sansio.gzip_codec import *  # noqa: F403
from crossgate.sansio.gzip_codec import __all__ as _codec

__all__ = [*_decision, *_codec]
warnings.warn("crossgate.sansio.compression is now crossgate.sansio.gzip", DeprecationWarning, 2)
