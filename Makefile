# Every target creates the virtualenv on first use: `make serve` and `make test` are
# all the set-up a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
NODE_CLIENT := clients/node
NODE_INSTALLED := $(NODE_CLIENT)/node_modules/.installed

.PHONY: install node serve test lint bench format clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "taskschema needs Python 3.11+; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

## node: the Node client's dependencies (npm ci) and build; without npm its tests skip
node:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(NODE_INSTALLED); \
	else echo "npm not found: the Node client's tests will be skipped (and fail under CI=true)"; fi

$(NODE_INSTALLED): $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json
	cd $(NODE_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	cd $(NODE_CLIENT) && npm run --silent build
	@touch $@

## serve: the registry on ./taskschema.db with the example contracts published
serve: $(INSTALLED)
	$(BIN)/taskschema serve --host $(HOST) --port $(PORT) --publish schemas

## test: the whole suite (services it cannot reach are skipped, or fail under CI=true)
test: $(INSTALLED) node
	$(BIN)/pytest

## lint: ruff and mypy --strict
lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: benchmarks, each reporting ratios against a baseline measured in the same run
bench: $(INSTALLED)
	$(BIN)/python -m tests.bench

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -rf $(NODE_CLIENT)/node_modules $(NODE_CLIENT)/dist $(NODE_CLIENT)/build
