"""Deprecated alias of `crossgate.sansio.trusted_hosts`."""

import warnings

from crossgate.sansio.trusted_hosts import *  # noqa: F403
from crossgate.sansio.trusted_hosts import __all__ as __all__

warnings.warn("crossgate.sansio.hosts is now crossgate.sansio.trusted_hosts", DeprecationWarning, 2)
