from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from tests.support import service_client


@pytest.fixture
async def rewards(
    empty_db: Callable[[str], Awaitable[str]],
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The rewards service on an emptied test database, without Kafka (events stay in its outbox and are
    handed to its consumer with ``tests.support.deliver``)."""
    await empty_db("rewards")
    async with service_client("rewards") as pair:
        yield pair


@pytest.fixture
def client(rewards: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return rewards[1]


@pytest.fixture
def app(rewards: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return rewards[0]
