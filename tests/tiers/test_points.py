"""``points.*`` events handled a consumer batch at a time (``service.points``) leave what they leave one at a
time: tiers on a points basis, history, announcements, balances and the weekly figures."""

from __future__ import annotations

from itertools import groupby
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from services.tiers import consumers
from services.tiers.models import PointsBalance, PointsWeek
from shared.messaging import events
from shared.messaging.consumer import EventConsumer
from shared.messaging.events import EventData
from tests.support import deliver
from tests.tiers.builders import balance_event, enrolled, points_earned, program, purchase
from tests.tiers.snapshots import standing


@pytest.fixture(autouse=True)
async def ladder(client: httpx.AsyncClient) -> None:
    """bronze 0, silver 500, gold 1000 points in a year."""
    assert (await client.put("/v1/tiers", json=program(basis="points"))).status_code == 200


def story(prefix: str, *, retold: int = 600) -> list[EventData]:
    """``retold``: the points the second ``points.earned`` of purchase p-1 tells (600 is what its
    ``purchase.recorded`` brought)."""
    one, two = f"{prefix}1", f"{prefix}2"
    return [
        enrolled(one), enrolled(two),
        purchase(f"{prefix}p-1", one, "600.00"), purchase(f"{prefix}p-2", two, "50.00"),
        points_earned(f"{prefix}p-1", one, 600),
        points_earned(f"{prefix}p-2", two, 50),
        points_earned(None, one, 25),  # a bonus, tied to no purchase
        points_earned(f"{prefix}p-1", one, retold),
        points_earned(f"{prefix}p-9", two, 10),  # a purchase tiers has not heard of
        points_earned(f"{prefix}p-2", one, 50),  # someone else's purchase
        balance_event(events.PointsSpent, one, 525),
        balance_event(events.PointsSpent, one, 475),
        balance_event(events.PointsExpired, two, 40),
        balance_event(events.PointsAdjusted, two, 45),
        balance_event(events.PointsHeld, one, 400, held=75, hold_id="h-1"),
        balance_event(events.PointsHeld, one, 350, held=125, hold_id="h-2"),
        balance_event(events.PointsReleased, one, 425, held=50, hold_id="h-1"),
        balance_event(events.PointsSpent, one, 425, hold_id="h-2", redemption_id=None),  # h-2 captured
        balance_event(events.PointsHeld, one, 400, held=25, hold_id="h-3"),
        balance_event(events.PointsReleased, two, 45, hold_id="h-4", reason="expired"),
    ]


async def in_batches(app: FastAPI, story: list[EventData]) -> None:
    """As the consumer does with one fetched batch: consecutive events of one type together, in one
    transaction (through the inbox)."""
    runtime = app.state.runtime
    consumer = EventConsumer(runtime.db, runtime.spec.metadata.tables["inbox"], service="tiers", bootstrap="unused",
                             topic_prefix="", topics=[], handlers=consumers.HANDLERS,
                             batch_handlers=consumers.BATCH_HANDLERS)
    async with runtime.db.transaction() as session:
        for event_type, run in groupby(story, key=lambda data: data.TYPE):
            batch = list(run)
            if event_type in consumers.BATCH_HANDLERS:
                await consumers.BATCH_HANDLERS[event_type](session, batch)
            else:
                for data in batch:
                    envelope = data.envelope("test")
                    await consumer.handlers[event_type](session, envelope, data)


async def outcome(app: FastAPI, client: httpx.AsyncClient, prefix: str) -> dict[str, Any]:
    members = {n: await standing(app, client, f"{prefix}{n}") for n in "12"}
    async with app.state.db.read() as session:
        balances = {b.member_id.removeprefix(prefix): (b.available, b.pending, b.held) for b in (await session.execute(
            select(PointsBalance).where(PointsBalance.member_id.startswith(prefix)))).scalars()}
        weeks = sorted((w.kind, w.member_id.removeprefix(prefix), w.points) for w in (await session.execute(
            select(PointsWeek).where(PointsWeek.member_id.startswith(prefix)))).scalars())
    return {"members": members, "balances": balances, "weeks": weeks}


@pytest.mark.parametrize("retold", [600, 1100], ids=["as-recorded", "another-figure"])
async def test_points_events_in_batches_leave_what_one_at_a_time_leaves(
    client: httpx.AsyncClient, app: FastAPI, retold: int
) -> None:
    await in_batches(app, story("A-", retold=retold))
    for data in story("B-", retold=retold):
        await deliver(app, data)

    batch, one_by_one = await outcome(app, client, "A-"), await outcome(app, client, "B-")
    assert batch == one_by_one
    assert batch["balances"] == {"1": (400, 0, 25), "2": (45, 0, 0)}
    assert ("issued", "1", 600 + 25 + retold + 50) in batch["weeks"]
    assert ("spent", "1", 30) in batch["weeks"], "two redemptions and a capture; holds and releases are not spent"
    assert ("expired", "2", 10) in batch["weeks"]
    expected = "gold" if retold == 1100 else "silver"
    assert batch["members"]["1"]["tier"][0] == expected
