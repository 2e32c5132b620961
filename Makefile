# Every developer command in one place; the README and .ci/run use these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint format typecheck bench screenshots clean

install: $(STAMP)

# Reinstall when the dependency list changes; the project itself is installed editable.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/grading-app db upgrade
	$(BIN)/grading-app serve

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks migrate_batch_system.py app.py
	$(BIN)/ruff format --check src tests benchmarks migrate_batch_system.py app.py
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests benchmarks migrate_batch_system.py app.py
	$(BIN)/ruff check --fix src tests benchmarks migrate_batch_system.py app.py

bench: install
	$(BIN)/python benchmarks/upgrade.py
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/claim.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/uploads.py
	$(BIN)/python benchmarks/cost.py

# A PNG of every page at 1400x900 and 800x1000, for a person to look at (README).
SCREENSHOTS ?= screenshots
screenshots: install
	$(BIN)/python -m tests.e2e.screenshots $(SCREENSHOTS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
