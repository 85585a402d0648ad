"""Deprecated alias of `crossgate.sansio.proxy_headers`, renamed after the middleware it serves."""

import warnings

from crossgate.sansio.proxy_headers import *  # noqa: F403
from crossgate.sansio.proxy_headers import __all__ as __all__

warnings.warn(
    "crossgate.sansio.proxy is now crossgate.sansio.proxy_headers: import from there",
    DeprecationWarning,
    stacklevel=2,
)
