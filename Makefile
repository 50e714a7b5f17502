# Two entry points for a fresh clone: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint bench crash-points chaos install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# compat: a plain path in a .pth file, not an import hook run at every Python start
	# (~15 ms of each batchctl call); setuptools calls it transitional, hence the fallback.
	$(BIN)/pip install --quiet -e ".[test]" --config-settings editable_mode=compat \
	  || $(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh

# ruff (settings in pyproject.toml), mypy (strict for the core modules and the store) and
# the import rules of docs/design.md (import-linter; contracts in pyproject.toml).
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy batchd batchctl batchshared
	$(BIN)/lint-imports --no-cache

test: $(BIN)/.installed lint
	$(BIN)/python -m pytest -q

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

# Every reached crash point (n = 1 and the median pass), not the CI sample.
crash-points: $(BIN)/.installed
	CRASH_POINTS_ALL=1 $(BIN)/python -m pytest -q -s tests/e2e/test_crash_points.py

# The chaos run bigger than CI's (every fault at once, SIGKILLs, a full disk; prints a table).
# Override with e.g. `make chaos CHAOS_SAMPLES=2000 CHAOS_KILLS=50 CHAOS_SEED=7`.
CHAOS_SAMPLES ?= 500
CHAOS_KILLS ?= 40
CHAOS_SEED ?= 14
CHAOS_POLL ?= 1
chaos: $(BIN)/.installed
	CHAOS_SAMPLES=$(CHAOS_SAMPLES) CHAOS_KILLS=$(CHAOS_KILLS) CHAOS_SEED=$(CHAOS_SEED) \
	  CHAOS_POLL=$(CHAOS_POLL) $(BIN)/python -m pytest -q -s tests/e2e/test_chaos.py

bench: $(BIN)/.installed
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache bench-report.json
