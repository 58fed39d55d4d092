# syntax=docker/dockerfile:1
# iap: one image for every role of the scaled deployment.
#   docker build -t iap .
#   docker run iap                   # the API (iap serve) on :8000
#   docker run iap iap worker        # an analysis worker
#   docker run iap iap migrate       # the release step: bring the schema up to date
# Configuration is IAP_* environment variables (docs/configuration.md); see compose.yaml.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: resolve nothing, install exactly what uv.lock says into /opt/iap --------------------
FROM ${PYTHON_IMAGE} AS build

# The uv the Makefile uses, from PyPI like every other dependency.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

ENV UV_PROJECT_ENVIRONMENT=/opt/iap \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

WORKDIR /build
# Dependencies first, in their own layer: a code change does not reinstall them.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project --python /usr/local/bin/python3

# Then iap itself, as a regular (not editable) install: the source tree stays in this stage.
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --python /usr/local/bin/python3

# --- runtime: the environment, a non-root user, nothing to build with -------------------------
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --system --gid 10001 iap \
 && useradd --system --uid 10001 --gid iap --home-dir /var/lib/iap --create-home \
        --shell /usr/sbin/nologin iap

COPY --from=build /opt/iap /opt/iap
COPY deploy/create_bucket.py /usr/local/lib/iap/create_bucket.py

# IAP_HOST: a container must listen on its network interface, not only on loopback.
# IAP_DATA_DIR: the embedded mode's files (a one-container try-out) go to the user's home.
ENV PATH=/opt/iap/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    IAP_HOST=0.0.0.0 \
    IAP_PORT=8000 \
    IAP_DATA_DIR=/var/lib/iap

USER iap:iap
WORKDIR /var/lib/iap
EXPOSE 8000

# Alive = /healthz answers. Only the API serves HTTP: compose turns this off for the worker and
# the one-shot services; Kubernetes uses its own probes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('IAP_PORT', '8000')}/healthz\", timeout=4)"]

CMD ["iap", "serve"]
