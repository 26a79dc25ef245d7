"""Session-wide servers: PostgreSQL always (started if needed); Kafka only for tests that ask for it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from shared.messaging.kafka import all_topic_names, delete_topics, ensure_topics
from tests.support import (
    KAFKA,
    SERVICES,
    db_name,
    ensure_kafka,
    ensure_postgres,
    recreate_schema,
    service_db_url,
    truncate_all,
)


@pytest.fixture(scope="session")
def pg() -> None:
    """PostgreSQL up with the test databases (the script is a no-op for what already exists)."""
    ensure_postgres([db_name(f"loyalty_test_{s}") for s in SERVICES] + [db_name(f"loyalty_sys_{s}") for s in SERVICES])


@pytest.fixture(scope="session")
def _migrated() -> set[str]:
    return set()


@pytest.fixture
def empty_db(pg: None, _migrated: set[str]) -> Callable[[str], Awaitable[str]]:
    """Empties a service's test database: migrated from scratch the first time in a session (so the
    migrations are tested), truncated after that. Returns its URL."""

    async def empty(service: str) -> str:
        url = service_db_url(service)
        if service in _migrated:
            await truncate_all(url)
        else:
            await recreate_schema(url, service)
            _migrated.add(service)
        return url

    return empty


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    ensure_kafka()
    yield KAFKA


@pytest.fixture
async def prefix(kafka: str) -> AsyncIterator[str]:
    """A private topic prefix on the real broker: the loyalty topics and their dead letters (3 partitions),
    deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:8]}."
    await ensure_topics(kafka, all_topic_names(name), partitions=3)
    yield name
    await delete_topics(kafka, all_topic_names(name))
