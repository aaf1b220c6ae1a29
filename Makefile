# Two commands: `make run` starts the service, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
# A local run and the tests need no secret; production sets DJANGO_SECRET_KEY and leaves this off.
export DJANGO_DEBUG ?= 1

.PHONY: run test test-fast lint typecheck test-sqlite test-postgres migrate bench clean

run: $(VENV)/.installed migrate
	@echo "API on http://127.0.0.1:$${PORT:-8000}/api/ - docs on /docs/, admin on /admin/"
	@rm -rf var/metrics  # the previous run's metrics (see notifier/core/metrics.py)
	honcho start --port $${PORT:-8000} -f Procfile

test: lint typecheck test-sqlite test-postgres

# The unit tests alone (no worker, beat, Redis or simulator process, no fuzzing), on SQLite.
test-fast: $(VENV)/.installed
	DATABASE_URL= python -m pytest -m "not integration and not slow" -q

lint: $(VENV)/.installed
	ruff check .
	ruff format --check .
	lint-imports

typecheck: $(VENV)/.installed
	mypy .

test-sqlite: $(VENV)/.installed
	DATABASE_URL= python -m pytest

test-postgres: $(VENV)/.installed
	scripts/with-postgres python -m pytest

# Benchmarks, not tests: real PostgreSQL, Redis, a worker and the simulator. SIZE=small for seconds.
bench: $(VENV)/.installed
	REQUIRE_POSTGRES=1 scripts/with-postgres python -m bench --size $${SIZE:-full}

migrate: $(VENV)/.installed
	@mkdir -p var
	python manage.py migrate --noinput

$(VENV)/.installed: requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed as $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
