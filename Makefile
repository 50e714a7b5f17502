# Two entry points for a fresh clone: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast bench crash-points install clean

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

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

# Every reached crash point (n = 1 and the median pass), not the CI sample.
crash-points: $(BIN)/.installed
	CRASH_POINTS_ALL=1 $(BIN)/python -m pytest -q -s tests/e2e/test_crash_points.py

bench: $(BIN)/.installed
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache bench-report.json
