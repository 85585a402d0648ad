"""A FastAPI app served by gunicorn's sync workers through ``crossgate.ASGIToWSGI``."""
