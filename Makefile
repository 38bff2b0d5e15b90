# carbon-assets: every command a fresh clone needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
PORT ?= 3000
# The markers conftest.py puts on tests that start Spark or use PostgreSQL (pyproject.toml).
FAST_TESTS := not spark and not browser and not postgres and not slow

.PHONY: help install dev stop demo test test-fast bench db-init emulator lint clean

help:
	@echo "make install  create $(VENV) and install the project with its dev tools"
	@echo "make dev      Dagster UI on :3000, or PORT=3001 (instance on the embedded PostgreSQL)"
	@echo "make stop     stop the embedded PostgreSQL that make dev and make demo leave running"
	@echo "make demo     offline: emulator + all four assets for January 2024"
	@echo "make test     install, then run the whole test suite"
	@echo "make test-fast  the tests without Spark, PostgreSQL, a browser or slow ones (no services)"
	@echo "make bench    the benchmarks, 1/3/8.5-year CLI backfills, side by side, UI (bench/results/)"
	@echo "make db-init  apply sql/ to the warehouse (idempotent)"
	@echo "make lint     ruff check and ruff format --check (part of make test)"

install: $(VENV)/.installed

$(VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

dev: install
	$(BIN)/carbon-assets dev --port $(PORT)

stop: install
	$(BIN)/carbon-assets stop

demo: install
	$(BIN)/carbon-assets demo

# Debian's chromium for the browser test: installed when root (CI); elsewhere the test skips.
test: install lint
	scripts/install-browser.sh || [ "$$(id -u)" -ne 0 ]
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -m "$(FAST_TESTS)" $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.scaling --batch-size 100
	$(BIN)/python -m bench.side_by_side --years 3 --api fast --out bench/results/side_by_side_fast.json
	$(BIN)/python -m bench.side_by_side --years 3 --api slow --out bench/results/side_by_side_slow.json
	$(BIN)/python -m bench.ui_backfill --years all --out bench/results/ui_backfill.json
	$(BIN)/python -m bench.object_store --years 3 --api slow --out bench/results/object_store_slow.json
	$(BIN)/python -m bench.object_store --years 0.5 --api fast --rounds 1 --rerun --increment --daily --local-only --out bench/results/rerun_and_increment.json

db-init: install
	$(BIN)/carbon-assets db-init

emulator: install
	$(BIN)/carbon-assets emulate-api --port 8765

lint: install
	$(BIN)/ruff check carbon_assets carbon_assets_tests bench
	$(BIN)/ruff format --check carbon_assets carbon_assets_tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
