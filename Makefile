# jacscale — the commands that matter. Every target sets itself up: a fresh
# machine needs nothing installed by hand (a Python >= 3.12 is found, or named).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
STAMP := $(VENV)/.installed
APP ?= examples/todo/app.jac
PORT ?= 8000
# One pytest process per core (at most 4): more makes the servers the tests start
# wait on each other for CPU.
TEST_PROCESSES ?= $(shell n=$$(nproc); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: run test lint bench bench-quick clean venv

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml) scripts/find-python.sh
	@set -e; python=$$(./scripts/find-python.sh); \
	  if [ ! -x $(PY) ]; then echo "creating $(VENV) with $$python"; "$$python" -m venv $(VENV); fi
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' $(foreach p,$(PLUGINS),-e $(p))
	@touch $(STAMP)

venv: $(STAMP)

## Serve the example todo app on :$(PORT)
run: $(STAMP)
	$(VENV)/bin/jacscale serve $(APP) --port $(PORT)

## Run the whole test suite (starts its own redis-server, test servers for Mongo/Kubernetes)
## in TEST_PROCESSES pytest processes, one test file per process at a time.
test: $(STAMP)
	./scripts/ensure-test-tools.sh
	@echo "pytest: $(TEST_PROCESSES) processes on $$(nproc) cores, load average $$(cut -d' ' -f1-3 /proc/loadavg)"
	$(VENV)/bin/pytest -q -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src plugins tests benchmarks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/run.py

bench-quick: $(STAMP)
	$(PY) benchmarks/run.py --quick

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
