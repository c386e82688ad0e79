"""Headless Chromium for every browser test (admin pages, GraphiQL): Debian's /usr/bin/chromium driven
by Playwright. One session-wide browser, loaded as a plugin by tests/conftest.py: a second copy of the
session fixture (a test module importing it) would start a second Playwright in the same thread, which
Playwright refuses ("Sync API inside the asyncio loop")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.paths import ROOT

# Playwright's sync API runs an asyncio loop in this thread; Django's ORM would otherwise refuse
# to run next to it. The live server answers in its own thread, so this is safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="session")
def chromium_browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium package (make test does).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def live_server(request):
    """pytest-django's live server, but its static files come through the app's WhiteNoise (the
    collected, hashed files), as under gunicorn: Django's test static handler only finds unhashed names,
    so every page it serves with DEBUG unset would be unstyled."""
    import os

    from pytest_django.live_server_helper import LiveServer

    server = LiveServer(os.getenv("DJANGO_LIVE_TEST_SERVER_ADDRESS") or "localhost", start=False)
    server.thread.static_handler = lambda application: application  # nothing in front of the app
    server.start()
    yield server
    server.stop()


@pytest.fixture
def page(chromium_browser, request) -> Iterator:
    """A fresh browser context (own cookies) per test; a screenshot is kept when the test fails."""
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    browser_page = context.new_page()
    yield browser_page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        screenshot(browser_page, f"FAILED-{request.node.name}")
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def screenshot(browser_page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    browser_page.screenshot(path=str(path), full_page=True)
    return path
