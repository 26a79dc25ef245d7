from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.kafka import all_topic_names, delete_topics
from tests.support import SERVICES, db_url, recreate_schema
from tests.system.harness import System


@pytest.fixture(scope="module")
def system(pg: None, kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The three services as processes on fresh PostgreSQL databases, real Kafka, a private topic prefix."""
    urls = {name: db_url(f"loyalty_sys_{name}") for name in SERVICES}

    async def prepare() -> None:
        for name, url in urls.items():
            await recreate_schema(url, name)

    asyncio.run(prepare())
    prefix = f"t{uuid.uuid4().hex[:8]}."
    log_dir: Path = tmp_path_factory.mktemp("system-logs")
    running = System(urls, kafka, prefix, log_dir)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        asyncio.run(delete_topics(kafka, all_topic_names(prefix)))
