"""Headless Chromium for tests that check pages render: ``open_page(path)``.

The browser is the system's Chromium (``make test`` installs Debian's ``chromium`` when
it is missing), driven by Playwright with ``executable_path``: Playwright's own browser
download is not used. Where no Chromium or no Playwright is found the test is skipped
locally and fails under ``CI`` (``conftest.missing``).

Example::

    from browser import open_page

    def test_report(tmp_path):
        with open_page(tmp_path / "report.html") as page:
            assert page.locator("table tr").count() > 1
"""

import contextlib
import os
import pathlib
import shutil
from collections.abc import Iterator

from conftest import missing, require

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def chromium_path() -> str:
    """The Chromium executable: ``$CHROMIUM`` if set, else the first of
    :data:`CANDIDATES` on ``PATH``."""
    found = os.environ.get("CHROMIUM") or next(
        (p for p in map(shutil.which, CANDIDATES) if p), None)
    if not found or not os.access(found, os.X_OK):
        missing(f"no Chromium ({found or 'none on PATH'}; make test installs Debian's "
                "chromium)")
    return str(found)


@contextlib.contextmanager
def open_page(path: pathlib.Path, timeout_ms: int = 30_000) -> Iterator["object"]:
    """A Playwright ``Page`` with the local file ``path`` loaded (``load`` event fired:
    images decoded), in a fresh headless Chromium with no network; closed on exit."""
    require("playwright", "pip install playwright")
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True)
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            page.goto(pathlib.Path(path).resolve().as_uri(), wait_until="load")
            yield page
        finally:
            browser.close()
