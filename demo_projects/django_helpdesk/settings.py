"""Django settings for the helpdesk demo.

Environment variables:

- `HELPDESK_DATA_DIR`: where the SQLite database (`db.sqlite3`) and uploaded files (`media/`)
  live; defaults to `var/` next to this file.
- `HELPDESK_DEBUG=1`: turns `DEBUG` on (off by default, as in production).
- `HELPDESK_SECRET_KEY`: the signing key; a fixed demo key otherwise (the demo only ever listens
  on 127.0.0.1).
- `HELPDESK_EXPORT_GATE` (tests only): a file path. When set, the CSV export writes
  `<path>.waiting` after its first ticket row, produces the remaining rows only once `<path>`
  exists (or 30 s passed), then writes `<path>.done`, so a test can prove the export streams
  without measuring time.
- `REDIS_URL`: the Channels layer of stages 2 and 3 goes through Redis (`channels_redis`, for
  several worker processes) when it is set, stays in memory (one process) otherwise.
- `HELPDESK_ASYNC_TO_SYNC`: `crossgate` (default) or `asgiref`, the `async_to_sync` the comment
  receiver sends with (`live/signals.py`).

The pages inline their CSS and JavaScript, so they render the same under every server without a
static-file server; the admin's own static files are served by a plain Django view (`urls.py`).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("HELPDESK_DATA_DIR") or BASE_DIR / "var").resolve()

SECRET_KEY = os.environ.get("HELPDESK_SECRET_KEY", "helpdesk-demo-only-not-a-secret")
DEBUG = os.environ.get("HELPDESK_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "demo_projects.django_helpdesk.tickets",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_projects.django_helpdesk.urls"
WSGI_APPLICATION = "demo_projects.django_helpdesk.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "db.sqlite3",
        "OPTIONS": {
            # Several gunicorn workers (stage 0) or worker threads (stage 1) write at once:
            # WAL lets readers run beside a writer, IMMEDIATE takes the write lock when a
            # transaction starts instead of failing mid-way, and the timeout waits for it.
            "init_command": "PRAGMA journal_mode=WAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media/"
STATIC_URL = "/static/"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False

# Channels (stages 2 and 3): the channel layer that carries a new comment to the consumers.
REDIS_URL = os.environ.get("REDIS_URL") or None
CHANNEL_LAYERS: dict[str, dict[str, object]]
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # "socket_timeout": None: channels_redis 4.3 waits for messages with a blocking
                # read of several seconds on its pooled connections, and redis-py 8 gives those
                # connections a 5 s read timeout by default: every websocket idle for more than
                # 5 s would fail with "Timeout reading from socket" (channels_redis issue #422).
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

HELPDESK_EXPORT_GATE = os.environ.get("HELPDESK_EXPORT_GATE") or None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        # crossgate logs what it refused or aborted; the server's log is where to look.
        "crossgate": {
            "handlers": ["console"],
            "level": os.environ.get("HELPDESK_CROSSGATE_LOG_LEVEL", "INFO"),
        },
        # The live updates say which channel layer they use and when they close it.
        "demo_projects.django_helpdesk.live": {"handlers": ["console"], "level": "INFO"},
    },
}
