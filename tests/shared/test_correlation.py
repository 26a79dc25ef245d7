"""The correlation id of a purchase request is carried by every event the request writes, so a purchase can be
followed from the HTTP request into Kafka (and the consumers carry it on to the events they cause)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from tests.points.builders import enroll, now_purchase
from tests.support import outbox_events, service_client


@pytest.fixture
async def points(empty_db: Callable[[str], Awaitable[str]]) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    await empty_db("points")
    async with service_client("points") as pair:
        yield pair


async def correlation_ids(app: FastAPI, purchase_id: str) -> set[str | None]:
    return {e["correlation_id"] for e in await outbox_events(app) if e["data"].get("purchase_id") == purchase_id}


async def test_events_of_a_purchase_carry_the_callers_correlation_id(
    points: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = points
    await enroll(client, "m-1")
    answer = await client.post("/v1/purchases", json=now_purchase("p-1", "m-1", "20.00"),
                               headers={"X-Correlation-ID": "till-7:receipt-42"})
    assert answer.status_code == 201, answer.text
    written = [e for e in await outbox_events(app) if e["data"].get("purchase_id") == "p-1"]
    assert sorted(e["type"] for e in written) == ["points.earned", "purchase.recorded"]
    assert await correlation_ids(app, "p-1") == {"till-7:receipt-42"}


async def test_a_request_without_one_gets_its_own(points: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = points
    await enroll(client, "m-1")
    for purchase_id in ("p-1", "p-2"):
        answer = await client.post("/v1/purchases", json=now_purchase(purchase_id, "m-1", "20.00"))
        assert answer.status_code == 201, answer.text
    first, second = await correlation_ids(app, "p-1"), await correlation_ids(app, "p-2")
    assert len(first) == 1 and len(second) == 1, "one id for all the events of one request"
    assert None not in first and first != second
