# xoweb: the two commands of the README, and the steps they share.
#   make run    set up, then start every process under honcho (Ctrl-C stops them all, in order:
#               xoweb/graceful.py)
#   make test   set up (plus the test tools), then lint and run the whole test suite (SQLite,
#               then PostgreSQL)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
TEST_INSTALLED := $(VENV)/.installed-test
NPM_PREFIX := var/npm
# Test processes run side by side: most tests wait on the real servers they start, so a few
# more processes than cores keep the machine busy (pytest-xdist). Tests marked with one
# xdist_group run in one process, one after the other: each `make run` stack (the Procfile's
# nine processes) is started once and never beside another (--dist loadgroup).
TEST_PROCESSES ?= 3
XDIST := -n $(TEST_PROCESSES) --dist loadgroup
# The ports follow XOWEB_WEB_PORT / XOWEB_FLOWER_PORT when set (as the Procfile does).
WEB_PORT := $(or $(XOWEB_WEB_PORT),8000)
FLOWER_PORT := $(or $(XOWEB_FLOWER_PORT),5555)

.PHONY: run test setup test-setup lint pytest pytest-postgres lock clean

run: setup
	@$(PY) manage.py ensure_admin
	@$(PY) manage.py demo_pool
	@echo
	@echo "  xoweb     http://127.0.0.1:$(WEB_PORT)/   (user admin, password in var/admin_password)"
	@echo "  admin     http://127.0.0.1:$(WEB_PORT)/admin/"
	@echo "  flower    http://127.0.0.1:$(FLOWER_PORT)/   (user admin, password in var/flower_password)"
	@echo "  the demo pool backs itself up (job 'demo', deltas every 2 min, a full every 10): docs/user-guide.md"
	@echo
	@# After a Ctrl-C that stopped every process in order, honcho exits 130: not an error.
	@XOWEB_WEB_PORT=$(WEB_PORT) XOWEB_FLOWER_PORT=$(FLOWER_PORT) \
		$(PY) -m xoweb.graceful honcho start -f Procfile || [ $$? -eq 130 ]

test: test-setup lint pytest pytest-postgres

setup: $(INSTALLED)
	@scripts/install-os-packages run
	@$(PY) manage.py migrate --noinput -v 0
	@$(PY) manage.py collectstatic --noinput -v 0

test-setup: setup $(TEST_INSTALLED) $(NPM_PREFIX)/.installed
	@scripts/install-os-packages test

# The service's dependencies only: what production runs (requirements.lock).
$(INSTALLED): pyproject.toml requirements.lock
	@scripts/install-os-packages run
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	touch $@

# What the tests add: pytest, Playwright, hypothesis, ruff… (requirements-test.lock).
$(TEST_INSTALLED): $(INSTALLED) requirements-test.lock
	$(PY) -m pip install -q -r requirements.lock -r requirements-test.lock
	touch $@

# XO's own XAPI client, the independent peer of the simulator's tests.
$(NPM_PREFIX)/.installed:
	@scripts/install-os-packages test
	npm install -s --no-audit --no-fund --prefix $(NPM_PREFIX) xen-api@4.7.6
	touch $@

lint: $(TEST_INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

pytest: test-setup
	$(PY) -m pytest $(XDIST)

# The database tests again, on a throwaway PostgreSQL cluster.
pytest-postgres: test-setup
	scripts/with-postgres $(PY) -m pytest -m django_db -q $(XDIST)

# Re-resolve the dependencies within pyproject.toml's ranges and record both locks: the service's
# alone first, then what the tests add on top of it (constrained to the service's versions).
lock:
	rm -rf var/lock-venv && $(PYTHON) -m venv var/lock-venv
	var/lock-venv/bin/pip install -q --upgrade pip
	var/lock-venv/bin/pip install -q .
	{ sed -n '/^#/p' requirements.lock; var/lock-venv/bin/pip freeze --exclude xoweb; } > var/service.lock
	var/lock-venv/bin/pip install -q '.[test]' -c var/service.lock
	{ sed -n '/^#/p' requirements-test.lock; var/lock-venv/bin/pip freeze --exclude xoweb \
	  | grep -vxFf var/service.lock; } > var/test.lock
	mv var/service.lock requirements.lock && mv var/test.lock requirements-test.lock
	rm -rf var/lock-venv build *.egg-info

clean:
	rm -rf $(VENV) var/static
