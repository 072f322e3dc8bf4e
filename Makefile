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
	@echo "==> Python packages into $(VENV) (the first time takes a few minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

# The proxy (configurable-http-proxy) goes into ./node_modules; npm ci runs only when the
# lock file differs from the one last installed.
node-deps:
	@cmp -s package-lock.json node_modules/.bosun-installed-lock || \
	  { npm ci --no-audit --no-fund && cp package-lock.json node_modules/.bosun-installed-lock; }

system-deps: python-deps
	$(BIN)/python -m library.sandbox.system

## test: the whole suite (unit + integration against the local sandbox)
test: setup
	$(BIN)/python -m pytest

unit: python-deps
	$(BIN)/python -m pytest tests/unit

lint: python-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: benchmarks, each printing ratios against its anchor measured in the same run
bench: setup
	$(BIN)/python -m pytest tests/bench -s -p no:cacheprovider -o python_files='bench_*.py'

## demo: the sandbox platform; the rsp_checks health checks against it; a one-minute
## Scale-Friday campaign on it (EmptyLoop, a few labs, a few TAP users, HTTP users on the hub);
## a report for each; then the sandbox stopped (a running sandbox is reused and left running)
demo: setup
	@export ARTIFACT_DIR="$${ARTIFACT_DIR:-$$PWD/artifacts/demo-$$(date -u +%Y%m%d-%H%M%S)}"; \
	  sandbox() { ARTIFACT_DIR="$$ARTIFACT_DIR/sandbox" $(BIN)/python run_toolbox.py sandbox "$$@"; }; \
	  campaign() { ARTIFACT_DIR="$$ARTIFACT_DIR/$$1" $(BIN)/python ci/run "$${@:2}"; }; \
	  $(BIN)/python -c 'import library.sandbox as s; exit(s.status()["hub"]["running"])' && \
	    trap 'sandbox down' EXIT; \
	  sandbox up || exit $$?; \
	  campaign checks rsp_checks ci --preset sandbox; checks=$$?; \
	  campaign scale_friday scale_friday ci --preset friday --preset sandbox; scale=$$?; \
	  echo "demo artifacts: $$ARTIFACT_DIR"; \
	  echo "  health checks: $$ARTIFACT_DIR/checks/report/index.html"; \
	  echo "  Scale Friday:  $$ARTIFACT_DIR/scale_friday/report/index.html"; \
	  exit $$(( checks ? checks : scale ))

clean:
	rm -rf $(VENV) node_modules .sandbox .pytest_cache .ruff_cache
