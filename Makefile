# Switchboard developer entry points. Everything runs from the project's own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint typecheck unit integration bench crds clean

$(BIN)/.installed: pyproject.toml
	scripts/install-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/.installed ## create .venv and install Switchboard with its test tools

demo: setup ## a real local run: mock providers, the sidecar, a workload, the cost table
	$(BIN)/switchboard demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy  # the files of both source roots, from pyproject.toml

unit: setup
	$(BIN)/pytest tests/unit -q

test: lint typecheck ## everything CI runs
	$(BIN)/pytest -q

crds: setup ## regenerate crds/ from the pydantic models, then the chart's CRD templates
	$(BIN)/python -m switchboard.crdgen --out crds
	$(BIN)/python hack/chart_crds.py

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	touch $@

bench: $(BIN)/.bench-installed ## sidecar vs direct vs LiteLLM, see bench/README.md
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
