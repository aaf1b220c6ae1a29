# Two commands: `make run` starts the service, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
# A local run and the tests need no secret; production sets DJANGO_SECRET_KEY and leaves this off.
export DJANGO_DEBUG ?= 1
# `make run`: the API on BIND_HOST:PORT (bin/web: loopback unless told otherwise), and the
# simulator of the sending API on the next two ports (its API, then its control port), which
# the default PROBE_URL follows (config/settings.py); PROBE_SIM_PORT=... moves it alone.
PORT ?= 8000
PROBE_SIM_PORT ?= $(shell expr $(PORT) + 1)
# Every process of `make run` also appends its events to this file, as JSON lines.
LOG_FILE ?= $(CURDIR)/var/log/notifier.jsonl

.PHONY: run superuser test test-fast lint typecheck test-sqlite test-postgres migrate bench \
	bench-report clean

run: $(VENV)/.installed .env migrate
	@echo "API on http://$${BIND_HOST:-127.0.0.1}:$(PORT)/api/ - docs on /docs/, admin on /admin/"
	@echo "simulator of the sending API on :$(PROBE_SIM_PORT), control :$$(($(PROBE_SIM_PORT) + 1));" \
		"logs also in $(LOG_FILE)"
	@rm -rf var/metrics  # the previous run's metrics (see notifier/core/metrics.py)
	PROBE_SIM_PORT=$(PROBE_SIM_PORT) LOG_FILE=$(LOG_FILE) honcho start --port $(PORT) -f Procfile

# A user for the admin and the API: asks for a name and a password, or takes them from
# DJANGO_SUPERUSER_USERNAME, DJANGO_SUPERUSER_PASSWORD and DJANGO_SUPERUSER_EMAIL.
superuser: $(VENV)/.installed .env migrate
	python manage.py createsuperuser $(if $(DJANGO_SUPERUSER_USERNAME),--noinput)

# The first run's local settings (never committed; .env.example lists the rest): debug on and
# a secret key of its own, so that `python manage.py ...` works as it is, without variables.
.env:
	@printf '%s\n' '# Made by make for local work (never committed); see .env.example.' \
		DJANGO_DEBUG=1 "DJANGO_SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" \
		> $@.tmp
	@mv $@.tmp $@
	@echo "wrote $@ (debug on, a new secret key)"

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

# Benchmarks, not tests: real PostgreSQL, Redis, a worker and the simulator. SIZE=small for
# minutes. The report and plots go to var/bench/; bench-report regenerates the committed ones
# (docs/benchmarks.md), at full size only.
SIZE ?= full
bench: $(VENV)/.installed
	REQUIRE_POSTGRES=1 scripts/with-postgres python -m bench --size $(SIZE)

bench-report: $(VENV)/.installed
	REQUIRE_POSTGRES=1 scripts/with-postgres python -m bench --size full --out docs

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
