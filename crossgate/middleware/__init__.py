"""Middleware that applies one policy to ASGI and WSGI apps alike (docs/middleware.md)."""

from crossgate.middleware.body_limit import BodyLimit, WSGIBodyLimit
from crossgate.middleware.gzip import GZip, WSGIGZip
from crossgate.middleware.origin_check import OriginCheck, WSGIOriginCheck
from crossgate.middleware.proxy_headers import ProxyHeaders, WSGIProxyHeaders
from crossgate.middleware.request_id import (
    RequestID,
    RequestIDFilter,
    WSGIRequestID,
    current_request_id,
)
from crossgate.middleware.trusted_hosts import TrustedHosts, WSGITrustedHosts

__all__ = [
    "BodyLimit",
    "GZip",
    "OriginCheck",
    "ProxyHeaders",
    "RequestID",
    "RequestIDFilter",
    "TrustedHosts",
    "WSGIBodyLimit",
    "WSGIGZip",
    "WSGIOriginCheck",
    "WSGIProxyHeaders",
    "WSGIRequestID",
    "WSGITrustedHosts",
    "current_request_id",
]
