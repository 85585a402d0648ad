# The two commands of the README's Quickstart: `make demo` and `make test`. Each creates .venv
# with everything it needs on first use (only Python 3.11+ must be on the machine).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make demo` needs only the `demo` extra (the servers, Django, Channels, ...): a venv made for
# it gets this stamp; `make setup` adds the whole dev toolchain (which includes the demo's).
DEMO_STAMP := $(VENV)/.installed-demo
# The port every demo listens on, on 127.0.0.1: `make demo PORT=8001`.
PORT ?= 8000

.PHONY: setup demo-setup system-deps demo demo-django demo-flask-mount demo-gunicorn demo-flask-legacy test conformance bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "crossgate needs Python 3.11 or newer as '$(PYTHON)'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

$(DEMO_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "crossgate needs Python 3.11 or newer as '$(PYTHON)'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[demo]"
	touch $(DEMO_STAMP)

demo-setup: $(DEMO_STAMP)

# The main demo: the legacy Django helpdesk at its last migration stage (new async views first,
# the untouched legacy app behind them, live comments over Channels websockets), on SQLite and
# Channels' in-memory layer. The runner prepares the database and prints the URL.
demo: demo-setup
	$(BIN)/python -m demo_projects.django_helpdesk serve --stage 3 --port $(PORT)

# Every other demo, one command each (see each demo's README).
STAGE ?= 3
demo-django: demo-setup
	$(BIN)/python -m demo_projects.django_helpdesk serve --stage $(STAGE) --port $(PORT)

demo-flask-mount: demo-setup
	@echo "Serving the Flask app mounted at /legacy of a Starlette app: http://127.0.0.1:$(PORT)/"
	$(BIN)/python -m uvicorn demo_projects.flask_mount.app:application --host 127.0.0.1 --port $(PORT)

demo-gunicorn: demo-setup
	@echo "Serving a FastAPI app from gunicorn sync workers through ASGIToWSGI: http://127.0.0.1:$(PORT)/"
	$(BIN)/python -m gunicorn --config demo_projects/asgi_on_gunicorn/gunicorn_conf.py --bind 127.0.0.1:$(PORT)

demo-flask-legacy: demo-setup
	@echo "Serving the legacy Flask demo through crossgate under uvicorn: http://127.0.0.1:$(PORT)/"
	$(BIN)/python -m uvicorn demo_projects.flask_legacy.asgi:application --host 127.0.0.1 --port $(PORT)

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
