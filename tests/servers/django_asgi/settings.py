"""Settings: those of ``tests.servers.django_app``, with this package's URLs."""

from __future__ import annotations

from typing import Any

from tests.servers.django_app import settings as base

SECRET_KEY = base.SECRET_KEY
DEBUG = base.DEBUG
ALLOWED_HOSTS = base.ALLOWED_HOSTS
ROOT_URLCONF = "tests.servers.django_asgi.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, Any]] = {}
USE_TZ = base.USE_TZ
USE_I18N = base.USE_I18N
