"""Deprecated alias of `crossgate.sansio.proxy_headers` and `crossgate.sansio.forwarded`.

Renamed after the middleware they serve; the header parsers have a module of their own.
"""

import warnings

from crossgate.sansio.forwarded import (
    ClientAddress,
    Prefix,
    parse_forwarded,
    parse_node,
    parse_prefix,
)
from crossgate.sansio.proxy_headers import *  # noqa: F403
from crossgate.sansio.proxy_headers import __all__ as _decision

__all__ = [*_decision, "ClientAddress", "Prefix", "parse_forwarded", "parse_node", "parse_prefix"]

warnings.warn(
    "crossgate.sansio.proxy is now crossgate.sansio.proxy_headers (the parsers: "
    "crossgate.sansio.forwarded): import from there",
    DeprecationWarning,
    stacklevel=2,
)
