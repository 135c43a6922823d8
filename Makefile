# Tollgate: `make demo` runs it, `make test` tests it. Needs only Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: demo test lint format bench install install-dev lock upgrade worker beat serve

$(BIN)/python:
	@echo "Creating .venv and installing the locked dependencies (a minute or two the first time)..."
	@$(PYTHON) -m venv $(VENV)

# Installs come from the lock files only: every package pinned to an exact version, with hashes.
$(VENV)/.installed: $(BIN)/python requirements.txt
	@$(PIP) install -qq --require-hashes --no-deps -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: $(BIN)/python requirements-dev.txt
	@$(PIP) install -qq --require-hashes --no-deps -r requirements-dev.txt
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The locks are compiled from the direct dependencies in requirements.in / requirements-dev.in.
# `make lock` re-resolves after an edit of an .in file, keeping every other pin; `make upgrade`
# moves every transitive package to its newest release allowed by the .in files.
PIP_COMPILE = $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links

lock: install-dev
	$(PIP_COMPILE) -o requirements.txt requirements.in
	$(PIP_COMPILE) -o requirements-dev.txt requirements-dev.in

upgrade: install-dev
	$(PIP_COMPILE) --upgrade -o requirements.txt requirements.in
	$(PIP_COMPILE) --upgrade -o requirements-dev.txt requirements-dev.in

# A local, never-committed .env with DEBUG on and a random development SECRET_KEY.
.env:
	@printf 'DEBUG=true\nSECRET_KEY=%s\n' "$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > .env
	@echo "wrote .env (DEBUG=true, random SECRET_KEY)"

# Where the demo server listens: `make demo PORT=8001` (or HOST=0.0.0.0).
HOST ?= 127.0.0.1
PORT ?= 8000

# Quiet on purpose: the closing block (URLs, first-run password and API key) is the last thing
# printed before the server's own lines.
demo: install .env
	@$(BIN)/python manage.py migrate --check >/dev/null 2>&1 || \
	  echo "Migrating (the first run takes about two minutes: dj-stripe's migrations)..."
	@$(BIN)/python manage.py migrate --noinput --verbosity 0
	@$(BIN)/python manage.py load_demo --host $(HOST) --port $(PORT)
	@$(BIN)/python manage.py runserver --skip-checks $(HOST):$(PORT)

serve: install .env
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

worker: install .env
	$(BIN)/celery -A billing_project worker --loglevel=info

beat: install .env
	$(BIN)/python manage.py setup_periodic_tasks
	$(BIN)/celery -A billing_project beat --loglevel=info

# One pytest-xdist worker per core, each with its own test database (test_tollgate_gw0, ...);
# tests marked xdist_group run on one worker, in file order (a check reading what others counted).
TEST_WORKERS ?= auto

test: install-dev .env
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# mypy reads its settings (django-stubs and DRF plugins, strict pure modules) from pyproject.toml.
lint: install-dev .env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

BENCHMARKS := bench_ingest bench_usage bench_plans bench_invoicing bench_billing_workers bench_partitioning bench_corrections bench_wallets bench_payments bench_webhooks bench_console bench_api_logs

# Figures and ratios against a baseline measured in the same run; never timed assertions.
bench: install-dev .env
	@ran=0; for b in $(BENCHMARKS); do \
	  if $(BIN)/python manage.py help $$b >/dev/null 2>&1; then $(BIN)/python manage.py $$b || exit 1; ran=1; fi; \
	done; [ $$ran = 1 ] || echo "no benchmarks yet"
