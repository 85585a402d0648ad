"""`GZip` / `WSGIGZip`: compress responses with gzip (or brotli) without holding streams back.

Both negotiate ``Accept-Encoding``, leave alone what should not be compressed (see
`crossgate.sansio.gzip.plan_response`), add ``Vary: Accept-Encoding`` to every response that
could have been compressed, and flush the compressor after every chunk the app sends, so
server-sent-event-like streams and long polls reach the client as they are produced. Requests are
never decompressed: a request body with ``Content-Encoding: gzip`` reaches the app as sent (no
decompression bomb can go off here).

Both sides take the same options, declared once (`crossgate.middleware.gzip._options`); the
ASGI side is in ``_asgi.py``, the WSGI side in ``_wsgi.py``.
"""

from crossgate.middleware.gzip._asgi import GZip
from crossgate.middleware.gzip._wsgi import WSGIGZip

__all__ = ["GZip", "WSGIGZip"]
