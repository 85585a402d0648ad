"""The "legacy" Flask application: the kind of app a project already has.

Plain WSGI, nothing in it knows about ASGI or about being mounted: every URL comes from
``url_for`` (links, the form's action, redirects, static files), so it builds correct URLs under
whatever ``SCRIPT_NAME`` the server gives it. ``app.py`` mounts it at ``/legacy`` of a Starlette
app; on its own it runs with ``flask --app demo_projects.flask_mount.legacy run``.

Pages:

* ``/`` -- a welcome page greeting the visitor by the name kept in the session;
* ``/about`` -- where the app believes it lives (``request.script_root``, ``request.path``);
* ``/preferences`` -- a form that stores a name and a colour theme in the session cookie, then
  redirects back (POST-redirect-GET) with a flashed message;
* ``/home`` -- an old URL kept alive as a redirect to ``/``;
* ``/static/...`` -- a stylesheet and a logo.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

__all__ = ["MAX_NAME", "THEMES", "create_app"]

MAX_NAME = 40
THEMES = ("light", "dark")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app; ``config`` overrides its settings (the mount sets ``APPLICATION_ROOT``).

    The session is signed with ``FLASK_MOUNT_SECRET_KEY`` when it is set, else with a key made
    at startup (sessions then end when the server restarts).
    """
    app = Flask(__name__, template_folder="templates", static_folder="static")
    app.config["SECRET_KEY"] = os.environ.get("FLASK_MOUNT_SECRET_KEY") or secrets.token_hex(32)
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if config is not None:
        app.config.update(config)

    @app.context_processor
    def page_context() -> dict[str, Any]:
        # Every page names the process that rendered it: the mount demo's proof that one
        # process serves the Flask pages and the Starlette API alike.
        return {
            "pid": os.getpid(),
            "theme": session.get("theme", THEMES[0]),
            "visitor": session.get("name"),
        }

    @app.get("/")
    def index() -> str:
        return render_template("legacy/index.html")

    @app.get("/about")
    def about() -> str:
        return render_template("legacy/about.html")

    @app.route("/preferences", methods=["GET", "POST"])
    def preferences() -> str | tuple[str, int] | BaseResponse:
        if request.method == "GET":
            return render_template("legacy/preferences.html", error=None)
        name = request.form.get("name", "").strip()
        theme = request.form.get("theme", "")
        error = None
        if not name or len(name) > MAX_NAME:
            error = f"Please give a name of 1 to {MAX_NAME} characters."
        elif theme not in THEMES:
            error = f"The theme must be one of: {', '.join(THEMES)}."
        if error is not None:
            return render_template("legacy/preferences.html", error=error), 400
        session["name"] = name
        session["theme"] = theme
        flash(f"Saved: {name} prefers the {theme} theme.")
        # POST-redirect-GET: reloading the page afterwards does not post the form again.
        return redirect(url_for("preferences"))

    @app.get("/home")
    def old_home() -> BaseResponse:
        # The URL the app had years ago; bookmarks still use it.
        return redirect(url_for("index"))

    return app
