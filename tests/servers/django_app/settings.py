"""Settings for the Django test project: no database, no apps, no middleware.

The mypy django-stubs plugin imports this module (``[tool.django-stubs]`` in pyproject.toml), so
it must import cleanly with nothing configured.
"""

from __future__ import annotations

from typing import Any

# Fixed and public: this project only ever serves tests on 127.0.0.1.
SECRET_KEY = "crossgate-tests-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

ROOT_URLCONF = "tests.servers.django_app.urls"
WSGI_APPLICATION = "tests.servers.django_app.wsgi.application"

INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
# No view touches a database; an empty mapping keeps Django from opening one.
DATABASES: dict[str, dict[str, Any]] = {}

USE_TZ = True
USE_I18N = False
