"""Retention and the hourly evaluation, with "now" moved forward through the use cases' ``now``."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from services.tiers import jobs
from services.tiers.app import SPEC
from services.tiers.models import Member, Purchase
from services.tiers.service import members, purchases
from shared.clock import utcnow
from shared.db.database import Database
from tests.support import deliver, outbox_events
from tests.tiers.builders import program, purchase, refund, tier

YEAR = timedelta(days=365)


async def tier_at(db: Database, member_id: str, now: datetime) -> dict[str, Any]:
    async with db.read() as session:
        return (await members.member_tier(session, member_id, now=now)).model_dump()


async def moves(client: httpx.AsyncClient, member_id: str) -> list[tuple[str | None, str, str]]:
    items = (await client.get(f"/v1/members/{member_id}/tier/history")).json()["items"]
    return [(h["from_tier"], h["to_tier"], h["reason"]) for h in reversed(items)]


async def test_the_window_is_summed_when_read(client: httpx.AsyncClient, app: FastAPI, db: Database) -> None:
    await client.put("/v1/tiers", json=program())
    await deliver(app, purchase("p-1", "C-1", "600.00", days_ago=360))
    now = utcnow()
    assert (await tier_at(db, "C-1", now))["qualifying_value"] == "600.00"
    later = await tier_at(db, "C-1", now + timedelta(days=6))
    assert later["qualifying_value"] == "0.00" and later["tier_id"] == "silver"
    assert later["next_tier"] == {"tier_id": "gold", "threshold": "1000.00", "remaining": "1000.00"}


async def test_the_tier_is_kept_until_retention_ends_then_drops_to_what_the_window_supports(
    client: httpx.AsyncClient, app: FastAPI, db: Database
) -> None:
    await client.put("/v1/tiers", json=program())
    await deliver(app, purchase("p-1", "C-1", "1100.00", days_ago=300))
    await deliver(app, purchase("p-2", "C-1", "200.00", days_ago=1))
    now = utcnow()
    assert (await tier_at(db, "C-1", now))["tier_id"] == "gold"

    assert await members.evaluate_all(db, now=now + timedelta(days=100)) == 0, "p-1 left the window: still kept"
    assert (await tier_at(db, "C-1", now + timedelta(days=100)))["tier_id"] == "gold"

    after = now + YEAR + timedelta(hours=1)
    assert await members.evaluate_all(db, now=after) == 1
    got = await tier_at(db, "C-1", after)
    assert got["tier_id"] == "bronze", "p-2 left the window too"
    assert await moves(client, "C-1") == [
        (None, "bronze", "enrolled"), ("bronze", "gold", "upgrade"), ("gold", "bronze", "downgrade")]
    drop = (await outbox_events(app, "tier.changed"))[-1]["data"]
    assert (drop["from_tier"], drop["to_tier"], drop["rank"], drop["earn_multiplier"]) == ("gold", "bronze", 0, "1")
    assert await members.evaluate_all(db, now=after) == 0, "safe to run twice"
    assert len(await moves(client, "C-1")) == 3


async def test_to_qualified_stops_at_the_tier_the_window_still_supports(
    client: httpx.AsyncClient, app: FastAPI, db: Database
) -> None:
    await client.put("/v1/tiers", json=program(window_days=730))
    await deliver(app, purchase("p-1", "C-1", "500.00", days_ago=10))
    await deliver(app, purchase("p-2", "C-1", "700.00", days_ago=400))
    now = utcnow()
    assert (await tier_at(db, "C-1", now))["tier_id"] == "gold"
    # a year on: p-2 (then 765 days old) has left the 730-day window, p-1 still counts 500
    assert await members.evaluate_all(db, now=now + YEAR + timedelta(days=1)) == 1
    assert (await tier_at(db, "C-1", now + YEAR))["tier_id"] == "silver"


async def test_one_level_steps_down_once_per_retention_period(
    client: httpx.AsyncClient, app: FastAPI, db: Database
) -> None:
    await client.put("/v1/tiers", json=program(downgrade="one_level", retention_days=30))
    await deliver(app, purchase("p-1", "C-1", "1000.00", days_ago=364))
    now = utcnow()
    assert await members.evaluate_all(db, now=now + timedelta(days=31)) == 1
    assert (await tier_at(db, "C-1", now))["tier_id"] == "silver"
    assert await members.evaluate_all(db, now=now + timedelta(days=32)) == 0, "a new retention period"
    assert await members.evaluate_all(db, now=now + timedelta(days=62)) == 1
    assert (await tier_at(db, "C-1", now))["tier_id"] == "bronze"
    assert [m[1:] for m in await moves(client, "C-1")][-2:] == [("silver", "downgrade"), ("bronze", "downgrade")]


async def test_never_keeps_the_tier(client: httpx.AsyncClient, app: FastAPI, db: Database) -> None:
    await client.put("/v1/tiers", json=program(downgrade="never"))
    await deliver(app, purchase("p-1", "C-1", "1000.00", days_ago=1))
    assert await members.evaluate_all(db, now=utcnow() + 3 * YEAR) == 0
    assert (await tier_at(db, "C-1", utcnow() + 3 * YEAR))["tier_id"] == "gold"


async def test_a_member_still_qualifying_when_retention_ends_is_renewed(
    client: httpx.AsyncClient, app: FastAPI, db: Database
) -> None:
    await client.put("/v1/tiers", json=program())
    await deliver(app, purchase("p-1", "C-1", "600.00", days_ago=1))
    async with db.transaction() as session:  # as if the upgrade had been long ago
        await session.execute(update(Member).where(Member.member_id == "C-1")
                              .values(retained_until=utcnow() - timedelta(days=1)))
    now = utcnow()
    assert await members.evaluate_all(db, now=now) == 0
    got = await tier_at(db, "C-1", now)
    assert got["tier_id"] == "silver" and got["retained_until"] >= now + YEAR - timedelta(seconds=1)


async def test_qualifying_again_pushes_retention_forward(
    client: httpx.AsyncClient, app: FastAPI, db: Database
) -> None:
    await client.put("/v1/tiers", json=program())
    await deliver(app, purchase("p-1", "C-1", "600.00", days_ago=1))
    first = (await tier_at(db, "C-1", utcnow()))["retained_until"]
    later = utcnow() + timedelta(days=100)
    async with db.transaction() as session:
        await purchases.record_purchase(session, purchase("p-2", "C-1", "5.00", days_ago=-100), now=later)
    got = await tier_at(db, "C-1", later)
    assert got["retained_until"] == later + YEAR > first
    assert got["tier_id"] == "silver" and got["since"] < first - YEAR + timedelta(minutes=1), "since stays"


async def test_a_lower_value_after_a_refund_never_shortens_retention(
    client: httpx.AsyncClient, app: FastAPI, db: Database
) -> None:
    await client.put("/v1/tiers", json=program(tiers=[tier("bronze", "0"), tier("silver", "500")]))
    await deliver(app, purchase("p-1", "C-1", "600.00", days_ago=1))
    before = (await tier_at(db, "C-1", utcnow()))["retained_until"]
    async with db.transaction() as session:
        await purchases.record_refund(session, refund("r-1", "p-1", "C-1", "550.00"), now=utcnow() + timedelta(days=1))
    got = await tier_at(db, "C-1", utcnow())
    assert got["retained_until"] == before and got["tier_id"] == "silver" and got["qualifying_value"] == "50.00"


async def test_a_program_change_waits_for_evaluations_that_read_the_old_one(
    client: httpx.AsyncClient, db: Database
) -> None:
    async with db.transaction() as session:
        await purchases.record_purchase(session, purchase("p-1", "C-new", "300.00"))
        change = asyncio.create_task(client.put("/v1/tiers", json=program(
            tiers=[tier("blue", "0"), tier("green", "250")])))
        await asyncio.sleep(0.3)
        assert not change.done(), "the change waits until the evaluation commits"
    assert (await change).status_code == 200
    got = await tier_at(db, "C-new", utcnow())
    assert got["tier_id"] == "green", "the member enrolled meanwhile was evaluated against the new ladder"


async def test_the_hourly_job_runs_the_evaluation(client: httpx.AsyncClient, app: FastAPI, db: Database) -> None:
    assert (3600.0, jobs.evaluate_tiers) in SPEC.jobs
    await client.put("/v1/tiers", json=program())
    await deliver(app, purchase("p-1", "C-1", "600.00", days_ago=1))
    async with db.transaction() as session:
        await session.execute(update(Member).values(retained_until=utcnow() - timedelta(seconds=1)))
        await session.execute(update(Purchase).values(occurred_at=utcnow() - 2 * YEAR))
    await jobs.evaluate_tiers(app.state.runtime)
    assert (await tier_at(db, "C-1", utcnow()))["tier_id"] == "bronze"
