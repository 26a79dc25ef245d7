"""Session-wide servers: PostgreSQL always (started if needed); Kafka only for tests that ask for it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest

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
