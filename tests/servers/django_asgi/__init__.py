"""The Django test project served the ASGI way: Django's own ``get_asgi_application()`` inside
``ASGIToWSGI``, behind gunicorn. Its views are the WSGI project's, plus async ones for what
Django serves asynchronously only (streaming from an async generator)."""
