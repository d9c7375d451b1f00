# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# `make check` is the quick loop before a commit; `make test` (the CI command) runs everything.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint typecheck unit bench clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

# Debian's Chromium for the browser tests (nothing is downloaded by the test tool),
# nginx as the benchmarks' fast receiver, prometheus for promtool (the alert rules'
# checks) and tinyproxy (the egress proxy tests).
system-deps:
	@(command -v chromium && test -x /usr/sbin/nginx && command -v promtool && \
	  (command -v tinyproxy || test -x /usr/sbin/tinyproxy)) >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium nginx-light prometheus tinyproxy >/dev/null)

run: $(STAMP)
	$(BIN)/orderhooks serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# Three test processes on two cores: most tests wait on servers and timers, not the CPU.
# One file's tests stay in one process (--dist loadfile), sharing its module's servers.
PYTEST_PARALLEL = -n 3 --dist loadfile

test: $(STAMP) system-deps lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_PARALLEL)

# Lint, types, and the unit and integration tests on SQLite: no PostgreSQL, nothing slow.
check: $(STAMP) lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_PARALLEL) -m "not postgres and not slow" tests/unit tests/integration

bench: $(STAMP) system-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) orderhooks-data .pytest_cache .mypy_cache .ruff_cache
