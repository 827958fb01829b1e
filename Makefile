# Every target creates .venv itself on a fresh machine (needs python3 >= 3.11).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export QUEUELAB_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: setup run test check lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,redis]'
	touch $(STAMP)

run: $(STAMP)  ## a worker pool working off a demo load on SQLite (queuelab.db)
	$(PY) -m queuelab demo

test: $(STAMP)  ## the whole suite; PostgreSQL tests skip (with the reason) if no server answers
	$(PY) -m pytest

check: lint  ## lint, format check and types
	$(PY) -m mypy

lint: $(STAMP)
	$(PY) -m ruff check queuelab tests
	$(PY) -m ruff format --check queuelab tests

format: $(STAMP)
	$(PY) -m ruff format queuelab tests
	$(PY) -m ruff check --fix queuelab tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache queuelab.db queuelab.db-wal queuelab.db-shm
