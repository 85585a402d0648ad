"""Pure protocol translation between WSGI (PEP 3333) and ASGI: no threads, no asyncio, no I/O."""
