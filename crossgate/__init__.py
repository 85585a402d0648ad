"""crossgate: WSGI and ASGI code living together.

Run a WSGI application inside an ASGI server with `WSGIToASGI`; route one ASGI entry point
to ASGI and WSGI apps by protocol, path or fallback (`crossgate.routing`); apply one proxy,
host, origin, body-size, compression and request-ID policy to both sides
(`crossgate.middleware`); translate between the two protocols with the pure functions of
`crossgate.sansio`.
"""

from crossgate.adapters.wsgi_to_asgi import WSGIToASGI, wsgi_to_asgi
from crossgate.concurrency import server_loop
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

__all__ = [
    "AppProtocolError",
    "BodyLimit",
    "ClientDisconnected",
    "CrossgateError",
    "Fallback",
    "GZip",
    "Mount",
    "OriginCheck",
    "PathRouter",
    "PeerProtocolError",
    "ProtocolError",
    "ProtocolRouter",
    "ProxyHeaders",
    "RequestID",
    "RequestIDFilter",
    "RequestTooLarge",
    "ResponseAborted",
    "TrustedHosts",
    "WSGIBodyLimit",
    "WSGIGZip",
    "WSGIOriginCheck",
    "WSGIProxyHeaders",
    "WSGIRequestID",
    "WSGIToASGI",
    "WSGITrustedHosts",
    "__version__",
    "current_request_id",
    "server_loop",
    "wsgi_to_asgi",
]
