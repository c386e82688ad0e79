# For a newcomer: `make admin` (the admin on 127.0.0.1), `make demo` (embedded SQLite, no servers) and
# `make test` (real servers).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SERVICES_ENV = eval "$$(scripts/services env)"

# `make admin`: the admin served on 127.0.0.1 (README: Open the admin).
.PHONY: venv admin demo test test-fast services services-stop lint format bench clean-demo developers-md

# The runtime set (requirements.txt, what the image installs) plus tests and tooling.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

admin: venv
	$(PY) manage.py start_admin

# Embedded default: SQLite in var/, backups in backups/, tasks in-process. No environment needed.
demo: venv
	env -u DB_HOST -u REDIS_HOST -u S3_BACKUP_BUCKET $(PY) manage.py migrate --no-input -v 0
	env -u DB_HOST -u REDIS_HOST -u S3_BACKUP_BUCKET $(PY) manage.py setup_schedules
	env -u DB_HOST -u REDIS_HOST -u S3_BACKUP_BUCKET $(PY) manage.py seed_data --scale 1 --seed 42
	env -u DB_HOST -u REDIS_HOST -u S3_BACKUP_BUCKET $(PY) manage.py backup_advanced --compress zstd --tag demo
	env -u DB_HOST -u REDIS_HOST -u S3_BACKUP_BUCKET $(PY) manage.py list_backups

services: venv
	scripts/services start

services-stop:
	scripts/services stop

# The whole suite against real PostgreSQL, Redis, celery worker, moto S3 and headless Chromium.
# Two pytest-xdist workers, one test module per worker at a time (tests/conftest.py's xdist groups):
# most tests wait on child processes and servers, so two share the 2 cores well (15 min against 28 serial, one run each).
# `make test PYTEST_XDIST=` runs serially.
PYTEST_XDIST ?= -n 2 --dist loadgroup
test: services
	$(SERVICES_ENV) && $(PY) -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: services
	$(SERVICES_ENV) && $(PY) bench/run_all.py

# Regenerates the environment-variables table in DEVELOPERS.md from multipult/config.py.
developers-md: venv
	$(PY) scripts/update_developers_md
