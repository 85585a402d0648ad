"""`RequestID` / `WSGIRequestID`: one id per request, on the response, in the logs, and one
access line per request through `logging`.

The id is reused from the request's ``X-Request-ID`` only when the direct peer is trusted to set
it (``trust_incoming``) and the value is safe (`crossgate.sansio.request_id.accept_request_id`);
otherwise a fresh one is made. The app finds it in ``scope["crossgate.request_id"]`` (ASGI) or
``environ["crossgate.request_id"]`` (WSGI), in the request header itself (replaced, so a spoofed
value never reaches the app), and in `current_request_id` while its code runs; `RequestIDFilter`
puts it on every log record as ``record.request_id``.

Both sides take the same options, declared once (`crossgate.middleware.request_id._options`);
the ASGI side is in ``_asgi.py``, the WSGI side in ``_wsgi.py``.
"""

from crossgate.middleware.request_id._asgi import RequestID
from crossgate.middleware.request_id._options import (
    SCOPE_KEY as SCOPE_KEY,
)
from crossgate.middleware.request_id._options import (
    RequestIDFilter,
    current_request_id,
    request_id_var,
)
from crossgate.middleware.request_id._wsgi import WSGIRequestID

__all__ = [
    "RequestID",
    "RequestIDFilter",
    "WSGIRequestID",
    "current_request_id",
    "request_id_var",
]
