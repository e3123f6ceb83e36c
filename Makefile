# Two entry points for a newcomer: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint typecheck unit bench clean

$(BIN)/voicefleet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/voicefleet

run: install
	$(BIN)/voicefleet run

lint: install
	$(BIN)/ruff check services tests
	$(BIN)/ruff format --check services tests

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

bench: install
	$(BIN)/voicefleet bench --find-capacity --latency-profile us-east --py-spy --write BENCHMARKS.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
