"""Browser tests: Playwright driving Debian's Chromium against a live iap server.

``make test`` installs Chromium (``apt-get install chromium``) when it is missing. Elsewhere,
point ``IAP_TEST_CHROMIUM`` at a Chromium binary. As with the services, a missing browser skips
these tests, except when ``IAP_TEST_REQUIRE_SERVICES`` is set (CI), where it fails them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.conftest import settings_for
from tests.live_server import LiveServer, serve

CHROMIUM = Path(os.environ.get("IAP_TEST_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def browser(backend: str) -> Iterator[Browser]:
    """One Chromium per backend: started after that backend's server (tests ask for the server
    first), because Playwright's event loop must not be running while fixtures that run their
    own (the PostgreSQL set-up) are made."""
    if not CHROMIUM.is_file():
        message = (
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium, "
            "or set IAP_TEST_CHROMIUM to a Chromium binary"
        )
        if os.environ.get("IAP_TEST_REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            # No sandbox: CI runs as root, where Chromium's sandbox refuses to start.
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def ui_server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live server with every analyser on (OCR included: the page draws its boxes)."""
    settings = settings_for(
        backend,
        request,
        tmp_path_factory.mktemp(f"ui-{backend}"),
        disabled_analysers="",
        # A failing analysis gives up fast, so a test can watch it fail and be retried.
        analysis_max_retries=1,
        analysis_min_backoff_ms=50,
        analysis_max_backoff_ms=200,
    )
    with serve(settings, f"iap web UI ({backend})") as server:
        yield server


PageFactory = Callable[..., Page]


@pytest.fixture
def new_page(browser: Browser) -> Iterator[PageFactory]:
    """``new_page()``: a page in a fresh browser context (its own cookies). Any uncaught error in
    a page's script, and any request to another origin (a CDN, a font service), fails the
    test: the UI is served whole by iap."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []
    elsewhere: list[str] = []

    def make(width: int = 1280, height: int = 900) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": height}, accept_downloads=True
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        page.on("request", lambda request: _note_origin(request.url, elsewhere))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"script errors in the pages: {errors}"
    assert not elsewhere, f"the pages asked other origins for: {elsewhere}"


def _note_origin(url: str, elsewhere: list[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme in {"data", "blob"}:
        return
    if parts.hostname != "127.0.0.1":
        elsewhere.append(url)


def screenshot(page: Page, name: str) -> None:
    """Saved only when ``IAP_SCREENSHOTS_DIR`` is set (``make screenshots`` sets it)."""
    folder = os.environ.get("IAP_SCREENSHOTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=str(Path(folder) / f"{name}.jpg"), full_page=True, type="jpeg", quality=80
        )
