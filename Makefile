# The two commands a new user needs: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_PORT ?= 8000
SANDBOX_PORT ?= 12111

.PHONY: install demo test lint browser

# Browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
CHROMIUM ?= /usr/bin/chromium
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# Offline demo: SQLite, the Stripe sandbox, the worker and the web server, then a paid checkout.
demo: install
	DATABASE_URL= DJANGO_DEBUG=1 $(PY) manage.py demo --port $(DEMO_PORT) --sandbox-port $(SANDBOX_PORT)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	DJANGO_DEBUG=1 $(PY) manage.py makemigrations --check --dry-run
	# Types: strict on core/, crm/services/, stripe_events/ (see [tool.mypy] in pyproject.toml).
	DJANGO_DEBUG=1 $(PY) -m mypy

browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Chromium ($(CHROMIUM)), e.g. 'sudo apt-get install chromium', for the browser tests."; fi; \
	fi

# Uses DATABASE_URL when set (CI sets PostgreSQL); SQLite otherwise.
test: lint browser
	DJANGO_DEBUG=1 $(PY) manage.py check --fail-level WARNING
	DJANGO_DEBUG=1 $(PY) -m pytest $(PYTEST_ARGS)
