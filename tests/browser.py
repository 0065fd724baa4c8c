"""A real headless Chromium (Debian's `chromium`) driven by Playwright, for the tests of sprout's pages. Playwright's
own browser downloads are never used: our machines reach only package indexes, so it runs the system's Chromium."""

import shutil
from contextlib import contextmanager

import pytest


def chromium_binary() -> str:
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if binary is None:
        pytest.fail("Chromium is not installed; this test needs it (CI installs it): apt-get install -y chromium")
    return binary


@contextmanager
def chromium_page(width: int = 1400, height: int = 900):
    """A page, and the list its console errors and uncaught exceptions land in (a test asserts it stays empty)."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_binary(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.set_default_timeout(30_000)
            yield page, problems
        finally:
            browser.close()
