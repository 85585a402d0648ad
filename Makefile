# The two commands of the README's Quickstart: `make demo` and `make test`. Each creates .venv
# with everything it needs on first use (only Python 3.11+ must be on the machine).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system-deps demo demo-django demo-flask-mount demo-gunicorn demo-flask-legacy test conformance bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "crossgate needs Python 3.11 or newer as '$(PYTHON)'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# The main demo: the legacy Django helpdesk at its last migration stage (new async views first,
# the untouched legacy app behind them, live comments over websockets), on SQLite and the
# in-process hub. The runner prepares the database and prints the URL.
demo: setup
	$(BIN)/python -m demo_projects.django_helpdesk serve --stage 3

# Every other demo, one command each (see each demo's README).
STAGE ?= 3
demo-django: setup
	$(BIN)/python -m demo_projects.django_helpdesk serve --stage $(STAGE)

demo-flask-mount: setup
	@echo "Serving the Flask app mounted at /legacy of a Starlette app: http://127.0.0.1:8000/"
	$(BIN)/uvicorn demo_projects.flask_mount.app:application --host 127.0.0.1 --port 8000

demo-gunicorn: setup
	@echo "Serving a FastAPI app from gunicorn sync workers through ASGIToWSGI: http://127.0.0.1:8000/"
	$(BIN)/gunicorn --config demo_projects/asgi_on_gunicorn/gunicorn_conf.py

demo-flask-legacy: setup
	@echo "Serving the legacy Flask demo through crossgate under uvicorn: http://127.0.0.1:8000/"
	$(BIN)/uvicorn demo_projects.flask_legacy.asgi:application --host 127.0.0.1 --port 8000

# The demo tests also start Debian programs (Chromium, redis-server, h2load): installed if missing.
system-deps:
	bash scripts/system-deps

test: setup system-deps
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/check

# Starlette's and Flask's own test suites through the adapters (also run by `make test`); the
# sdists are downloaded once into build/conformance/. See docs/conformance.md.
conformance: setup
	$(BIN)/python -m conformance

bench: setup system-deps
	PATH="$(CURDIR)/$(BIN):$$PATH" bash bench/run

clean:
	rm -rf $(VENV) $(VENV)-3.* build .mypy_cache .pytest_cache .ruff_cache .coverage .hypothesis
