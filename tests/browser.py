"""The one way the tests open a real browser: Debian's Chromium through Playwright, never a
downloaded browser. In CI a missing Chromium fails the test (``.ci/run`` installs it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
"""A phone held upright (CSS pixels)."""
OUTPUT = Path(__file__).resolve().parents[1] / "test-output"


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("CI needs /usr/bin/chromium: .ci/run installs it with apt-get")
    pytest.skip("no /usr/bin/chromium: apt-get install -y chromium to run the browser test")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright's ``Browser``), closed at the end."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()
