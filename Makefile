# Every target creates the virtualenv on first use: `make serve` and `make test` are
# all the set-up a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install serve test lint bench format clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "taskschema needs Python 3.11+; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

## serve: the registry on ./taskschema.db with the example contracts published
serve: $(INSTALLED)
	$(BIN)/taskschema serve --host $(HOST) --port $(PORT) --publish schemas

## test: the whole suite (services it cannot reach are skipped, or fail under CI=true)
test: $(INSTALLED)
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
