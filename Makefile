# Every target creates .venv itself on a fresh machine (needs python3 >= 3.11).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export QUEUELAB_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: setup run demo test test-fast check lint format clean browser lab figures bench chaos fuzz soak sql

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip uninstall --quiet --yes queuelab 2>/dev/null || true  # the distribution's old name
	$(PY) -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

run: $(STAMP)  ## the API, the dashboard (http://127.0.0.1:8000/) and 4 worker processes on ./queuelab.db
	$(PY) -m queuelab.api --workers 4

demo: $(STAMP)  ## a worker pool working off a demo load on SQLite, in the terminal
	$(PY) -m queuelab demo

test: $(STAMP) browser  ## the whole suite; PostgreSQL/Redis/browser tests skip (with the reason) if absent
	$(PY) -m pytest

# The fast tier, for the edit loop (about 80 s here): the tests/unit, tests/store and tests/api
# folders, nothing marked slow, on SQLite and PostgreSQL (whose half skips, with the reason, where
# no server answers). The other tiers (tests/runtime, tests/lab, tests/acceptance) start threads,
# worker processes, experiments, the CLI and a browser. `make test` (what CI runs) runs every tier.
FAST_TIERS := unit store api

test-fast: $(STAMP)  ## the fast tier: the unit, store and API tests, none marked slow, 60 s per test
	$(PY) -m pytest -q -m "not slow" --timeout 60 $(addprefix tests/,$(FAST_TIERS))

bench: $(STAMP)  ## the benchmark suite on SQLite and PostgreSQL (QUEUELAB_TEST_POSTGRES_URL); results in benchmarks/results/
	$(PY) -m queuelab.bench

lab: $(STAMP)  ## JupyterLab on notebooks/, with this project's environment as its Python kernel
	cd notebooks && ../$(PY) -m jupyter lab

# The README's figures, drawn by the notebooks (PostgreSQL too, where QUEUELAB_POSTGRES_URL is set)
figures: $(STAMP)
	$(PY) -m queuelab.lab.notebooks --figures docs/figures --work lab-runs

# The full reliability runs behind RELIABILITY.md (the test suite runs quick versions of each)
chaos: $(STAMP)  ## 20,000 jobs, 4 workers, one SIGKILLed every 0.5 s: on SQLite, then PostgreSQL
	rm -f lab-runs/chaos.db*; mkdir -p lab-runs
	$(PY) -m tests.support.chaos --db sqlite:///lab-runs/chaos.db --jobs 20000 --workers 4
	$(PY) -m tests.support.chaos --db "$(QUEUELAB_TEST_POSTGRES_URL)" --jobs 20000 --workers 4 --fresh-schema
	QUEUELAB_TEST_PG_RESTART=1 $(PY) -m pytest -q tests/acceptance/test_postgres_faults.py tests/acceptance/test_api_crash.py tests/acceptance/test_sqlite_faults.py

fuzz: $(STAMP)  ## schemathesis with a few thousand examples, the hand-made nasties, the state machine
	QUEUELAB_FUZZ_EXAMPLES=300 $(PY) -m pytest -q tests/api/test_schemathesis.py tests/api/test_nasties.py tests/store/test_state_machine.py tests/api/test_isolation.py

soak: $(STAMP)  ## 30 minutes of mixed load on the API and 2 worker processes (not in CI)
	rm -f lab-runs/soak.db*; mkdir -p lab-runs
	$(PY) -m tests.support.soak --db sqlite:///lab-runs/soak.db --minutes 30 --log lab-runs/soak-api.log

# The dashboard tests drive Debian's chromium (Playwright cannot download its own browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { 		echo "installing Debian's chromium for the browser tests"; 		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); 		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium 		|| echo "could not install chromium: the browser tests will be skipped"; }

check: $(STAMP) lint  ## lint, format check and types (mypy strict on the package and the tests)
	$(PY) -m mypy

lint: $(STAMP)
	$(PY) -m ruff check queuelab tests benchmarks
	$(PY) -m ruff format --check queuelab tests benchmarks
	$(PY) -m queuelab.store.sql --check

sql: $(STAMP)  ## rewrite queuelab/store/sql/*/*.sql after changing a statement (then read the diff)
	$(PY) -m queuelab.store.sql

format: $(STAMP)
	$(PY) -m ruff format queuelab tests benchmarks
	$(PY) -m ruff check --fix queuelab tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache queuelab.db queuelab.db-wal queuelab.db-shm queuelab.db-queuelab-lock lab-runs
