from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from shared.db.database import Database
from tests.support import service_client


@pytest.fixture
async def tiers(
    empty_db: Callable[[str], Awaitable[str]],
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The tiers service on an emptied test database, without Kafka (events stay in its outbox)."""
    await empty_db("tiers")
    async with service_client("tiers") as pair:
        yield pair


@pytest.fixture
def client(tiers: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return tiers[1]


@pytest.fixture
def app(tiers: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return tiers[0]


@pytest.fixture
def db(app: FastAPI) -> Database:
    database: Database = app.state.db
    return database
