"""Deprecated alias of `crossgate.sansio.proxy_headers` and `crossgate.sansio.forwarded`."""

import warnings

from crossgate.sansio.forwarded import *  # noqa: F403
from crossgate.sansio.forwarded import __all__ as _parsers
from crossgate.sansio.proxy_headers import *  # noqa: F403
from crossgate.sansio.proxy_headers import __all__ as _decision

# CONTROL came with crossgate.sansio.forwarded; the old module never exported it.
__all__ = [*_decision, *(name for name in _parsers if name != "CONTROL")]
warnings.warn("crossgate.sansio.proxy is now crossgate.sansio.proxy_headers", DeprecationWarning, 2)
