"""A "legacy" Flask application: plain WSGI, blocking code, nothing that knows about ASGI.

It runs unchanged under any WSGI server; ``asgi.py`` beside it is what puts it behind an ASGI
server. Its pages exercise the parts of WSGI an adapter most often gets wrong:

* ``/guestbook`` -- a form POST (the request body), redirect-after-post and a flashed message
  (a session cookie);
* ``/download`` -- ``flask.send_file``, which hands the file to ``wsgi.file_wrapper``;
* ``/countdown`` -- a slow streamed response made by a generator (``stream_with_context``);
* ``/environ/...`` -- what the WSGI environ holds, including a non-ASCII path.
"""

from __future__ import annotations

import atexit
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flask import (
    Flask,
    Response,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)
from jinja2 import DictLoader
from werkzeug.wrappers import Response as BaseResponse

__all__ = ["REPORT_NAME", "Entry", "Guestbook", "app", "create_app", "report_bytes"]

REPORT_NAME = "crossgate-report.csv"
MAX_NAME = 40
MAX_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    message: str


class Guestbook:
    """Entries kept in memory, newest first.

    Under ``WSGIToASGI`` (as under any threaded WSGI server) several requests run at once on
    different threads, so a lock guards the list.
    """

    def __init__(self, keep: int = 50) -> None:
        self._keep = keep
        self._entries: list[Entry] = []
        self._lock = threading.Lock()

    def add(self, entry: Entry) -> None:
        with self._lock:
            self._entries.insert(0, entry)
            del self._entries[self._keep :]

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries)


def report_bytes() -> bytes:
    """The download's content: a CSV of a few hundred kilobytes, the same on every run."""
    lines = ["n,square,hex"]
    lines.extend(f"{n},{n * n},{n:#x}" for n in range(20_000))
    return ("\n".join(lines) + "\n").encode("ascii")


TEMPLATES = {
    "layout.html": """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{% block title %}{% endblock %} - crossgate Flask demo</title>
  <style>
    body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto;
           padding: 0 1rem; line-height: 1.5; }
    nav a { margin-right: 1rem; }
    .flash { background: #eef6ee; border-left: 4px solid #3a3; padding: .5rem 1rem; }
    .flash.error { background: #fbeeee; border-color: #c33; }
    code { background: #f3f3f3; padding: 0 .2rem; }
    td, th { text-align: left; padding: .1rem .8rem .1rem 0; vertical-align: top; }
  </style>
</head>
<body>
  <nav>
    <a href="{{ url_for('index') }}">Home</a>
    <a href="{{ url_for('guestbook') }}">Guestbook</a>
    <a href="{{ url_for('download') }}">Download</a>
    <a href="{{ url_for('countdown') }}">Countdown</a>
    <a href="{{ url_for('show_environ') }}">Environ</a>
  </nav>
  {% for category, text in get_flashed_messages(with_categories=true) %}
    <p class="flash {{ category }}">{{ text }}</p>
  {% endfor %}
  {% block body %}{% endblock %}
</body>
</html>
""",
    "index.html": """{% extends "layout.html" %}
{% block title %}Home{% endblock %}
{% block body %}
<h1>A legacy Flask app, served from an ASGI server</h1>
<p>This is an ordinary WSGI application written with Flask: blocking code, no
<code>async</code>, nothing that knows about ASGI.</p>
{% if through_crossgate %}
<p>Right now an ASGI server (uvicorn, with <code>make demo-flask-legacy</code>) is serving it
through <code>crossgate.WSGIToASGI</code>. This request ran on <code>{{ thread }}</code>, one of the
worker threads of crossgate's pool, while the server's event loop kept handling other
connections. The request body streams into <code>wsgi.input</code> and the response streams
back to the client, with back-pressure.</p>
{% else %}
<p>Right now a plain WSGI server is serving it (thread <code>{{ thread }}</code>).</p>
{% endif %}
<h2>Try it</h2>
<ul>
  <li><a href="{{ url_for('guestbook') }}">Guestbook</a>: a form POST, a redirect after it, and
    a message flashed through the session cookie.</li>
  <li><a href="{{ url_for('download') }}">Download a CSV report</a>: sent with
    <code>flask.send_file</code>, which uses <code>wsgi.file_wrapper</code>.</li>
  <li><a href="{{ url_for('countdown') }}">Countdown</a>: a response streamed line by line from
    a slow generator. Close the tab halfway and the generator stops at once: crossgate notices
    the client left.</li>
  <li><a href="{{ url_for('show_environ', rest='caf\u00e9') }}">The WSGI environ</a> of a
    request for a non-ASCII path.</li>
</ul>
{% endblock %}
""",
    "guestbook.html": """{% extends "layout.html" %}
{% block title %}Guestbook{% endblock %}
{% block body %}
<h1>Guestbook</h1>
<form method="post" action="{{ url_for('sign') }}">
  <p><label>Name <input name="name" maxlength="{{ max_name }}" required></label></p>
  <p><label>Message<br>
    <textarea name="message" rows="3" cols="50" maxlength="{{ max_message }}"
      required></textarea></label></p>
  <p><button type="submit">Sign</button></p>
</form>
{% for entry in entries %}
  <p><strong>{{ entry.name }}</strong> wrote: {{ entry.message }}</p>
{% else %}
  <p>Nobody has signed yet.</p>
{% endfor %}
{% endblock %}
""",
    "environ.html": """{% extends "layout.html" %}
{% block title %}Environ{% endblock %}
{% block body %}
<h1>The WSGI environ of this request</h1>
<p>Flask decoded the path to <code>{{ path }}</code>. In the environ, <code>PATH_INFO</code>
carries the raw bytes one per code point (latin-1), as PEP 3333 asks.</p>
<table>
{% for key, value in rows %}
  <tr><th><code>{{ key }}</code></th><td><code>{{ value }}</code></td></tr>
{% endfor %}
</table>
{% endblock %}
""",
}

ENVIRON_KEYS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "wsgi.url_scheme",
    "wsgi.multithread",
    "wsgi.input_terminated",
    "wsgi.file_wrapper",
    "crossgate.disconnected",
)


def create_app(data_dir: Path | None = None) -> Flask:
    """Build the application; the report to download is written into ``data_dir``.

    Without ``data_dir``, a temporary directory is made and removed when the process exits.
    """
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="crossgate-demo-"))
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    report = data_dir / REPORT_NAME
    report.write_bytes(report_bytes())

    app = Flask(__name__)
    # Flashed messages live in the signed session cookie. A fresh key per process is fine for
    # a demo: restarting the server only forgets unread messages.
    app.secret_key = secrets.token_hex(32)
    # A limit for request bodies. It also makes werkzeug read wsgi.input in bounded pieces
    # (read(size)) through a stream that enforces it, rather than with one read() to EOF.
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.jinja_env.loader = DictLoader(TEMPLATES)
    book = Guestbook()

    @app.get("/")
    def index() -> str:
        return render_template(
            "index.html",
            through_crossgate="asgi.scope" in request.environ,
            thread=threading.current_thread().name,
        )

    @app.get("/guestbook")
    def guestbook() -> str:
        return render_template(
            "guestbook.html",
            entries=book.entries(),
            max_name=MAX_NAME,
            max_message=MAX_MESSAGE,
        )

    @app.post("/guestbook")
    def sign() -> BaseResponse:
        name = request.form.get("name", "").strip()
        message = request.form.get("message", "").strip()
        if not name or not message:
            flash("Please fill in both your name and a message.", "error")
        elif len(name) > MAX_NAME or len(message) > MAX_MESSAGE:
            flash(f"Names stop at {MAX_NAME} characters, messages at {MAX_MESSAGE}.", "error")
        else:
            book.add(Entry(name, message))
            flash(f"Thank you for signing, {name}!", "ok")
        # Redirect after POST, so that reloading the page does not post again.
        return redirect(url_for("guestbook"), code=303)

    @app.get("/download")
    def download() -> Response:
        # send_file opens the file and wraps it with environ["wsgi.file_wrapper"]. Under
        # crossgate that wrapper reads large blocks, or hands the file to the server when it
        # offers the ASGI pathsend / zerocopysend extensions.
        return send_file(report, mimetype="text/csv", as_attachment=True)

    @app.get("/countdown")
    def countdown() -> Response:
        start = min(max(request.args.get("from", 10, type=int), 0), 60)
        delay = min(max(request.args.get("delay", 0.5, type=float), 0.0), 5.0)
        # crossgate sets this threading.Event when the client disconnects; waiting on it
        # instead of time.sleep() ends the wait as soon as nobody is listening any more.
        gone: threading.Event = request.environ.get("crossgate.disconnected") or threading.Event()

        def lines() -> Iterator[str]:
            # stream_with_context keeps the request context alive while the response streams.
            yield f"Counting down from {start} for {request.remote_addr}\n"
            for n in range(start, 0, -1):
                yield f"{n}\n"
                if gone.wait(delay):
                    return
            yield "Liftoff!\n"

        response = Response(stream_with_context(lines()), mimetype="text/plain")
        # Browsers sniff the first kilobyte of text/plain before showing it; this asks them to
        # show each line as it arrives.
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/environ/", defaults={"rest": ""})
    @app.get("/environ/<path:rest>")
    def show_environ(rest: str) -> str:
        environ = request.environ
        rows = [(key, repr(environ[key])) for key in ENVIRON_KEYS if key in environ]
        rows.append(("worker thread", threading.current_thread().name))
        return render_template("environ.html", path=request.path, rows=rows)

    return app


app = create_app()
