"""crossgate: WSGI and ASGI code living together. Adapters both ways, sync/async helpers,
routers, middleware for both sides, and the pure translation functions of `crossgate.sansio`.
"""

from crossgate._logging import install_fallback as _install_fallback
from crossgate.adapters.asgi_to_wsgi import ASGIToWSGI, asgi_to_wsgi
from crossgate.adapters.wsgi_to_asgi import WSGIToASGI, wsgi_to_asgi
from crossgate.concurrency import (
    AsyncSingleThreadContext,
    AsyncToSyncIterator,
    ConcurrencyError,
    DeadlockError,
    OrphanedCalls,
    SyncToAsyncIterator,
    ThreadSensitiveContext,
    async_to_sync,
    async_to_sync_iter,
    check_cancelled,
    orphaned_calls,
    server_loop,
    sync_to_async,
    sync_to_async_iter,
)
from crossgate.exceptions import (
    AppProtocolError,
    ClientDisconnected,
    CrossgateError,
    PeerProtocolError,
    ProtocolError,
    RequestTooLarge,
    ResponseAborted,
)
from crossgate.middleware import (
    BodyLimit,
    GZip,
    OriginCheck,
    ProxyHeaders,
    RequestID,
    RequestIDFilter,
    TrustedHosts,
    WSGIBodyLimit,
    WSGIGZip,
    WSGIOriginCheck,
    WSGIProxyHeaders,
    WSGIRequestID,
    WSGITrustedHosts,
    current_request_id,
)
from crossgate.routing import Fallback, Mount, PathRouter, ProtocolRouter

__version__ = "0.1.0"

# Servers configure their own loggers, not the root: else crossgate's records print bare.
_install_fallback()

__all__ = [
    "ASGIToWSGI",
    "AppProtocolError",
    "AsyncSingleThreadContext",
    "AsyncToSyncIterator",
    "BodyLimit",
    "ClientDisconnected",
    "ConcurrencyError",
    "CrossgateError",
    "DeadlockError",
    "Fallback",
    "GZip",
    "Mount",
    "OriginCheck",
    "OrphanedCalls",
    "PathRouter",
    "PeerProtocolError",
    "ProtocolError",
    "ProtocolRouter",
    "ProxyHeaders",
    "RequestID",
    "RequestIDFilter",
    "RequestTooLarge",
    "ResponseAborted",
    "SyncToAsyncIterator",
    "ThreadSensitiveContext",
    "TrustedHosts",
    "WSGIBodyLimit",
    "WSGIGZip",
    "WSGIOriginCheck",
    "WSGIProxyHeaders",
    "WSGIRequestID",
    "WSGIToASGI",
    "WSGITrustedHosts",
    "__version__",
    "asgi_to_wsgi",
    "async_to_sync",
    "async_to_sync_iter",
    "check_cancelled",
    "current_request_id",
    "orphaned_calls",
    "server_loop",
    "sync_to_async",
    "sync_to_async_iter",
    "wsgi_to_asgi",
]
