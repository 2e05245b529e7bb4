# The workbook's commands. Quick start: `make run` (the whole course, headless)
# and `make test` (every test, including nbval over the notebooks).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WORKBOOK := $(VENV)/bin/workbook
INSTALLED := $(VENV)/.installed
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: help setup up down status lab run test lint test-unit test-contract test-integration \
        test-notebooks test-browser bench dashboard clean solutions reset

help:
	@echo "make run     set up everything, run every notebook headless into build/, print a summary"
	@echo "make test    set up what tests need, run lint, unit, contract, integration, notebook and browser tests"
	@echo "make solutions  write the notebooks with their exercises solved into build/solutions/ (instructor)"
	@echo "make reset   put the course back to its start: topics, consumer groups, streams, tables"
	@echo "make up | down | status | lab | bench | dashboard | clean"

# --- setup: virtual environment, packages, .env --------------------------------
$(INSTALLED): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is missing: run 'sudo apt-get install -y python3 python3-venv'."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

.env:
	cp .env.example .env
	@echo "Created .env from .env.example: change MYSQL_PASSWORD there if you like."

setup: $(INSTALLED) .env

# --- services -------------------------------------------------------------------
up: setup
	$(WORKBOOK) up

down:
	@if [ -x $(WORKBOOK) ]; then $(WORKBOOK) down; else echo "Nothing to stop: run make setup first."; fi

status: setup
	$(WORKBOOK) status

# JupyterLab refuses to run as root unless told (CI machines, containers, cloud VMs run as root)
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: up
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) notebooks/

# --- the main job ---------------------------------------------------------------
run: up
	$(WORKBOOK) notebooks --output build

# --- the classroom ----------------------------------------------------------------
# Solved copies for the instructor: each exercise's solution (solutions/*.py) after
# its check, both checks asserted (the starter fails, the solution passes).
solutions: setup
	$(PY) -m helpers.classroom.solutions build/solutions

reset: up
	$(WORKBOOK) reset

# --- tests: one command per layer, `make test` runs them all ----------------------
# pytest exits 5 when it collects no test: that is a failure here, said out loud.
define pytest_strict
	$(PYTEST) $(1); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests for: $(1)"; exit 1; fi; exit $$rc
endef

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test-unit: setup
	$(call pytest_strict,tests/unit -q -n 2)

test-contract: setup
	$(call pytest_strict,tests/contract -q)

# Two workers: the class server's and the hosted start's tests (services of their own) beside
# the tests of the shared stack, which run one at a time (tests/conftest.py, OWN_STACK).
test-integration: up
	$(call pytest_strict,tests/integration -q -n 2 --dist loadgroup)

# nbval runs the solved copies of the notebooks (see `solutions`), whose checked cells
# carry their expected outputs (tests/notebooks/expected.json); the committed notebooks
# carry none. One run checks the lessons, the students' starters and every solution.
test-notebooks: up
	$(PY) tests/notebooks/reference.py build
	$(call pytest_strict,--nbval-lax --nbval-current-env --nbval-cell-timeout=600 --nbval-sanitize-with tests/nbval_sanitize.cfg build/nbval -q)

test-browser: up
	$(call pytest_strict,tests/browser -q)

test: lint test-unit test-contract test-integration test-notebooks test-browser

bench: up
	$(PY) -m bench

dashboard: up
	$(VENV)/bin/voila --no-browser notebooks/dashboard.ipynb

clean: down
	rm -rf build .stack
