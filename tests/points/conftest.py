from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from shared.clock import clock
from tests.support import service_client


@pytest.fixture
async def points(
    empty_db: Callable[[str], Awaitable[str]],
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The points service on an emptied test database, without Kafka (events stay in its outbox)."""
    await empty_db("points")
    async with service_client("points") as pair:
        yield pair


@pytest.fixture
def client(points: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return points[1]


@pytest.fixture
def app(points: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return points[0]


@pytest.fixture
def travel() -> Iterator[Callable[[timedelta], None]]:
    """Moves the services' clock forward; put back after the test."""

    def move(by: timedelta) -> None:
        clock.offset += by

    yield move
    clock.offset = timedelta(0)
