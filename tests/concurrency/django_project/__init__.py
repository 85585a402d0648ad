"""A Django project on SQLite that proves thread-sensitive calls share Django's connection.

`probe` runs in its own process (``python -m tests.concurrency.django_project.probe DB``): the
pytest process may already have Django configured for ``tests/servers/django_app``.
"""
