"""A small "legacy" Flask application served from an ASGI server by ``crossgate.WSGIToASGI``."""
