"""Settings of the thread-sensitivity project: one app, one model, SQLite in a file.

The database file comes from ``CROSSGATE_TEST_DB``; a file (not ``:memory:``) so that two
threads get two connections, as they would in production, and a second writer waits on the
first one's lock. The short lock timeout turns such a wait into a quick failure.
"""

from __future__ import annotations

import os
from typing import Any

# Fixed and public: this project only ever runs inside the tests.
SECRET_KEY = "crossgate-concurrency-tests-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.concurrency.django_project.urls"
INSTALLED_APPS: list[str] = ["tests.concurrency.django_project.notes"]
# With a sync middleware Django runs async views under asgiref's async_to_sync from the
# middleware's thread; without one, directly in the request's ThreadSensitiveContext. The
# probe runs both ways.
MIDDLEWARE: list[str] = (
    ["tests.concurrency.django_project.views.record_thread"]
    if os.environ.get("CROSSGATE_TEST_MIDDLEWARE")
    else []
)
DATABASES: dict[str, dict[str, Any]] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CROSSGATE_TEST_DB", ":memory:"),
        "OPTIONS": {"timeout": 1},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
USE_I18N = False
