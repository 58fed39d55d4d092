# iap — the two commands a newcomer needs: `make run` and `make test`.
# Everything is installed into the project folder from the lock file (uv.lock): nothing global.

PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
TOOLS := .uv
UV := $(TOOLS)/bin/uv
BIN := $(VENV)/bin

export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
# Precompile at install: with PYTHONDONTWRITEBYTECODE set, every start would recompile every library.
export UV_COMPILE_BYTECODE := 1

.PHONY: install run test pytest lint format typecheck clean

install: $(VENV)/.synced

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --python $(PYTHON)
	@touch $@

## Start the service on embedded defaults (SQLite, local files, in-process cache) at :8000.
run: install
	$(BIN)/iap serve

## Lint, type-check and run the whole test suite.
test: lint typecheck pytest

pytest: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
