"""Debian's Chromium driven by Playwright, for the tests that open the services' pages (the fixtures
``chromium`` and ``playwright`` are in conftest.py). Screenshots go to .artifacts/, which the CI keeps."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Playwright

from tests.support import ROOT

ARTIFACTS = ROOT / ".artifacts"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    """Debian's chromium, installed by the project's script when missing."""
    result = subprocess.run([str(ROOT / "deploy/local/browser.sh")], check=True, capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1]


def launch(playwright: Playwright, chromium: str, profile: Path, *, args: tuple[str, ...] = (),
           **options: Any) -> BrowserContext:
    """Chromium on a fresh user-data-dir of its own: no cache, cookies or saved credentials from before."""
    return playwright.chromium.launch_persistent_context(
        profile, executable_path=chromium, headless=True, args=[*BROWSER_ARGS, *args], **options)
