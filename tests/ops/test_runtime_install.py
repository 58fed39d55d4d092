"""`make run` installs the runtime dependencies only (no test or lint tools): those alone must
serve everything, pages included, and Ctrl-C must stop the service quietly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import settings_for
from tests.ops.conftest import Launch

REPO = Path(__file__).parents[2]


def uv() -> str:
    """The uv that `make` installs (``.uv/``), or one on the PATH."""
    found = REPO / ".uv" / "bin" / "uv"
    path = str(found) if found.exists() else shutil.which("uv")
    assert path, "no uv: run `make install` first"
    return path


def test_the_runtime_dependencies_alone_serve_the_api_and_the_pages(
    request: pytest.FixtureRequest, tmp_path: Path, launch: Launch
) -> None:
    venv = tmp_path / "runtime"
    env = os.environ | {"UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    synced = subprocess.run(  # what `make install-runtime` runs, into a new environment
        [uv(), "sync", "--locked", "--no-dev", "--python", sys.executable],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert synced.returncode == 0, synced.stderr
    for tool in ("pytest", "mypy", "ruff", "playwright", "moto"):
        assert not (venv / "bin" / tool).exists(), f"{tool} came with the runtime install"

    settings = settings_for("embedded", request, tmp_path)
    server = launch(settings, "serve", port=True, python=str(venv / "bin" / "python"))
    server.wait_until_serving()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/docs").status_code == 200
        page = http.get("/sign-in")  # a Jinja2 page
        assert page.status_code == 200
        assert "<form" in page.text
    server.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert server.proc.wait(timeout=60) == 0
    assert "Traceback" not in server.output()
