"""crossgate: WSGI and ASGI code living together.

Run a WSGI application inside an ASGI server with `WSGIToASGI`; translate between the two
protocols with the pure functions of `crossgate.sansio`.
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

__version__ = "0.1.0"

__all__ = [
    "AppProtocolError",
    "ClientDisconnected",
    "CrossgateError",
    "PeerProtocolError",
    "ProtocolError",
    "RequestTooLarge",
    "ResponseAborted",
    "WSGIToASGI",
    "__version__",
    "server_loop",
    "wsgi_to_asgi",
]
