"""Deprecated alias of `crossgate.sansio.trusted_hosts`, renamed after the middleware it serves."""

import warnings

from crossgate.sansio.trusted_hosts import *  # noqa: F403
from crossgate.sansio.trusted_hosts import __all__ as __all__

warnings.warn(
    "crossgate.sansio.hosts is now crossgate.sansio.trusted_hosts: import from there",
    DeprecationWarning,
    stacklevel=2,
)
