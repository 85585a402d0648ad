# The two commands of the README's Quickstart: `make demo` and `make test`. Each creates .venv
# with everything it needs on first use (only Python 3.11+ must be on the machine).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "crossgate needs Python 3.11 or newer as '$(PYTHON)'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	@echo "Serving the legacy Flask demo through crossgate under uvicorn: http://127.0.0.1:8000/"
	$(BIN)/uvicorn demo_projects.flask_legacy.asgi:application --host 127.0.0.1 --port 8000

test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/check

bench: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash bench/run

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache .coverage .hypothesis
