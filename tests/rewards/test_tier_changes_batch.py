"""``tier.changed`` events a consumer batch at a time (``service.members.apply_tier_changes``) leave what they leave one
at a time: each member's tier and rank, and the ladder of the newest event that carries one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from services.rewards.models import Member, Tier
from services.rewards.service.members import apply_tier_changes, record_points_events
from shared.messaging import events
from tests.rewards.builders import earned, tier_changed
from tests.support import deliver, service_client

THREE = ["bronze", "silver", "gold"]
STORY = [
    earned("b", 50),  # b is known before its tier
    tier_changed("a", "silver", THREE, at="2026-11-20T10:00:00Z"),
    tier_changed("b", "gold", THREE, at="2026-11-20T10:00:00Z"),
    tier_changed("a", "gold", THREE, at="2026-11-20T11:00:00Z"),
    tier_changed("c", "silver", ["bronze", "silver"], at="2026-11-19T10:00:00Z"),  # an older ladder: ignored
    tier_changed("b", "bronze", [*THREE, "platinum"], at="2026-11-21T10:00:00Z"),  # a newer one: taken
]


async def outcome(empty_db: Callable[[str], Awaitable[str]],
                  apply: Callable[[FastAPI, list[events.EventData]], Awaitable[None]]) -> dict[str, Any]:
    await empty_db("rewards")
    async with service_client("rewards") as (app, _):
        await apply(app, STORY)
        async with app.state.db.read() as session:
            members = [(m.member_id, m.tier_id, m.tier_rank, m.available) for m in (await session.execute(
                select(Member).order_by(Member.member_id))).scalars()]
            ladder = [(t.tier_id, t.rank) for t in (await session.execute(select(Tier).order_by(Tier.rank))).scalars()]
    return {"members": members, "ladder": ladder}


async def one_by_one(app: FastAPI, story: list[events.EventData]) -> None:
    for data in story:
        await deliver(app, data)


async def tier_changes_together(app: FastAPI, story: list[events.EventData]) -> None:
    async with app.state.db.transaction() as session:
        for data in story:
            if not isinstance(data, events.TierChanged):
                await record_points_events(session, [data])  # type: ignore[list-item]
        await apply_tier_changes(session, [d for d in story if isinstance(d, events.TierChanged)])


async def test_tier_changes_in_a_batch_leave_what_one_at_a_time_leaves(
    empty_db: Callable[[str], Awaitable[str]],
) -> None:
    alone = await outcome(empty_db, one_by_one)
    together = await outcome(empty_db, tier_changes_together)
    assert together == alone
    assert alone["members"] == [("a", "gold", 2, 0), ("b", "bronze", 0, 50), ("c", "silver", 1, 0)]
    assert alone["ladder"] == [("bronze", 0), ("silver", 1), ("gold", 2), ("platinum", 3)]
