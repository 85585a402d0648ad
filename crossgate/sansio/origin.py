"""Deprecated alias of `crossgate.sansio.origin_check`."""

import warnings

from crossgate.sansio.origin_check import *  # noqa: F403
from crossgate.sansio.origin_check import __all__ as __all__

warnings.warn("crossgate.sansio.origin is now crossgate.sansio.origin_check", DeprecationWarning, 2)
