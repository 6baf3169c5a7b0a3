# The two commands a new user needs: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_PORT ?= 8000
SANDBOX_PORT ?= 12111

.PHONY: install demo test lint bench

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
	$(PY) manage.py makemigrations --check --dry-run

# Uses DATABASE_URL when set (CI sets PostgreSQL); SQLite otherwise.
test: lint
	DJANGO_DEBUG=1 $(PY) manage.py check --fail-level WARNING
	$(PY) -m pytest $(PYTEST_ARGS)
