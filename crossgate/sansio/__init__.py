"""Pure protocol translation between WSGI (PEP 3333) and ASGI: no threads, no asyncio, no I/O.

Everything here takes plain values (a scope, a status line, a list of headers) and returns plain
values, or raises `crossgate.ProtocolError`. The adapters in `crossgate.adapters`
feed it from their threads and event loops.
"""
