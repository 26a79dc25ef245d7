from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Playwright, sync_playwright

from tests.system.browser import chromium_path
from tests.system.harness import System, running_system


@pytest.fixture(scope="module")
def system(pg: None, kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The three services as processes on fresh PostgreSQL databases, real Kafka, a private topic prefix."""
    with running_system(kafka, tmp_path_factory.mktemp("system-logs")) as running:
        yield running


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed by the project's script when missing."""
    return chromium_path()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver
