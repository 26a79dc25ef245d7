"""Asking points again for a pending redemption whose answer is overdue (jobs.reask_stale), against PostgreSQL:
the same redemption id in a new event, a backoff between asks, never for a settled redemption, once per
redemption even with two instances at the same moment."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from services.rewards import domain, jobs
from services.rewards.app import SPEC
from services.rewards.models import Redemption
from services.rewards.settings import Settings
from shared.db.database import Database
from tests.rewards.builders import declined, put_reward, redeem, settle, spent, stock_left
from tests.support import deliver, outbox_events, service_client, service_db_url


async def asked(app: FastAPI, redemption_id: str) -> tuple[int, datetime]:
    """(asks, last_requested_at) of a redemption."""
    async with app.state.db.read() as session:
        row = await session.get(Redemption, redemption_id)
        assert row is not None
        return row.asks, row.last_requested_at


async def requests_for(app: FastAPI, redemption_id: str) -> list[dict[str, object]]:
    return [e for e in await outbox_events(app, "redemption.requested") if e["data"]["redemption_id"] == redemption_id]


def test_the_wait_doubles_up_to_the_limit() -> None:
    assert domain.reask_delays(30, 300) == [30, 60, 120, 240, 300]
    assert domain.reask_delays(30, 30) == [30]
    assert domain.reask_delays(1, 3) == [1, 2, 3]
    assert domain.reask_delays(0.5, 300)[-1] == 300 and len(domain.reask_delays(0.5, 300)) == 11


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().redemption_retry_seconds == 30 and Settings().redemption_retry_max_seconds == 300
    monkeypatch.setenv("REWARDS_REDEMPTION_RETRY_SECONDS", "1.5")
    monkeypatch.setenv("REWARDS_REDEMPTION_RETRY_MAX_SECONDS", "4")
    assert (Settings().redemption_retry_seconds, Settings().redemption_retry_max_seconds) == (1.5, 4)
    monkeypatch.setenv("REWARDS_REDEMPTION_RETRY_MAX_SECONDS", "1")
    with pytest.raises(ValidationError, match="below"):
        Settings()
    monkeypatch.setenv("REWARDS_REDEMPTION_RETRY_SECONDS", "0")
    with pytest.raises(ValidationError):
        Settings()


async def test_an_overdue_redemption_is_asked_again_with_the_same_id(client: httpx.AsyncClient, app: FastAPI
                                                                     ) -> None:
    await put_reward(client, "cup", stock=5)
    before = await redeem(client, "q-1", "ada", "cup", quantity=2)
    asks, first_ask = await asked(app, "q-1")
    assert asks == 1

    assert await jobs.reask_stale(app.state.db, now=first_ask + timedelta(seconds=29.9)) == 0
    assert await jobs.reask_stale(app.state.db, now=first_ask + timedelta(seconds=30)) == 1
    assert await asked(app, "q-1") == (2, first_ask + timedelta(seconds=30))
    original, again = await requests_for(app, "q-1")
    assert again["id"] != original["id"] and again["type"] == "redemption.requested"
    assert again["subject"] == "ada" and again["data"] == original["data"] == {
        "member_id": "ada", "redemption_id": "q-1", "reward_id": "cup", "quantity": 2, "points_cost": 200}
    # nothing a client sees changes: still pending, same updated_at, no stock moved
    assert (await client.get("/v1/redemptions/q-1")).json() == before
    assert await stock_left(client, "cup") == 3


async def test_the_wait_between_asks_doubles_up_to_the_limit(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup")
    await redeem(client, "q-2", "ada", "cup")
    _, start = await asked(app, "q-2")
    db: Database = app.state.db

    async def reask_at(seconds: float) -> int:
        return await jobs.reask_stale(db, now=start + timedelta(seconds=seconds), retry_seconds=30,
                                      retry_max_seconds=100)

    # asked at 0; again after 30, 60, 100 (the limit), 100, ...
    assert [await reask_at(t) for t in (29, 30, 89, 90, 189, 190, 289, 290, 389, 390)] == [0, 1, 0, 1, 0, 1, 0, 1,
                                                                                           0, 1]
    assert (await asked(app, "q-2"))[0] == 6
    assert len(await requests_for(app, "q-2")) == 6


async def test_running_twice_asks_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup")
    await redeem(client, "q-3", "ada", "cup")
    later = (await asked(app, "q-3"))[1] + timedelta(minutes=1)
    assert await jobs.reask_stale(app.state.db, now=later) == 1
    assert await jobs.reask_stale(app.state.db, now=later) == 0
    assert len(await requests_for(app, "q-3")) == 2


async def test_settled_redemptions_are_never_asked_again(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup", stock=10)
    for rid in ("s-confirmed", "s-rejected", "s-cancelled", "s-pending"):
        await redeem(client, rid, "ada", "cup")
    await settle(app, client, "s-confirmed", paid=True)
    await settle(app, client, "s-rejected", paid=False)
    await settle(app, client, "s-cancelled", paid=True)
    assert (await client.post("/v1/redemptions/s-cancelled/cancel")).status_code == 200
    a_day_later = (await asked(app, "s-pending"))[1] + timedelta(days=1)
    assert await jobs.reask_stale(app.state.db, now=a_day_later) == 1
    assert [e["data"]["redemption_id"] for e in await outbox_events(app, "redemption.requested")][4:] == ["s-pending"]


async def test_answers_to_every_ask_settle_the_redemption_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup", stock=5)
    await redeem(client, "q-4", "ada", "cup")
    start = (await asked(app, "q-4"))[1]
    for minutes in (1, 2, 4):
        assert await jobs.reask_stale(app.state.db, now=start + timedelta(minutes=minutes)) == 1
    # points answers each of the four asks the same way (it pays once and repeats its answer)
    for _ in range(4):
        assert await deliver(app, spent("q-4", "ada", 100, available=50)) == "handled"
    done = (await client.get("/v1/redemptions/q-4")).json()
    assert done["status"] == "confirmed"
    assert len(await outbox_events(app, "redemption.confirmed")) == 1
    assert await stock_left(client, "cup") == 4
    assert await jobs.reask_stale(app.state.db, now=start + timedelta(days=1)) == 0

    await redeem(client, "q-5", "bob", "cup")
    assert await jobs.reask_stale(app.state.db, now=start + timedelta(days=2)) == 1
    for _ in range(2):
        await deliver(app, declined("q-5", "bob", 100))
    assert (await client.get("/v1/redemptions/q-5")).json()["status"] == "rejected"
    assert await stock_left(client, "cup") == 4, "released once"


async def test_a_redemption_locked_by_another_transaction_is_skipped_not_waited_for(
    client: httpx.AsyncClient, app: FastAPI,
) -> None:
    await put_reward(client, "cup")
    await redeem(client, "q-6", "ada", "cup")
    await redeem(client, "q-7", "bob", "cup")
    later = (await asked(app, "q-7"))[1] + timedelta(minutes=1)
    db: Database = app.state.db
    async with db.transaction() as session:  # e.g. points' answer being settled by the consumer right now
        await session.get(Redemption, "q-6", with_for_update=True)
        assert await asyncio.wait_for(jobs.reask_stale(db, now=later), 5) == 1
    assert (await asked(app, "q-6"))[0] == 1 and (await asked(app, "q-7"))[0] == 2
    assert await jobs.reask_stale(db, now=later) == 1
    assert (await asked(app, "q-6"))[0] == 2


async def test_two_instances_at_the_same_moment_ask_each_redemption_once(client: httpx.AsyncClient, app: FastAPI
                                                                         ) -> None:
    await put_reward(client, "cup")
    for i in range(40):
        await redeem(client, f"m-{i}", f"member-{i}", "cup")
    later = (await asked(app, "m-39"))[1] + timedelta(minutes=1)
    instances = [Database(service_db_url("rewards")), Database(service_db_url("rewards"))]
    try:
        counts = await asyncio.gather(*[jobs.reask_stale(db, now=later, batch_size=3) for db in instances])
    finally:
        for db in instances:
            await db.dispose()
    assert sum(counts) == 40, counts
    for i in range(40):
        assert (await asked(app, f"m-{i}"))[0] == 2
    assert len(await outbox_events(app, "redemption.requested")) == 80


async def test_the_service_runs_the_job_with_its_settings(empty_db: Callable[[str], Awaitable[str]]) -> None:
    assert (jobs.REASK_EVERY_SECONDS, jobs.reask_redemptions) in SPEC.jobs
    await empty_db("rewards")
    async with service_client("rewards", redemption_retry_seconds=0.2,
                              redemption_retry_max_seconds=0.2) as (app, client):
        await put_reward(client, "cup")
        await redeem(client, "j-1", "ada", "cup")
        for _ in range(100):
            if len(await requests_for(app, "j-1")) >= 2:
                break
            await asyncio.sleep(0.1)
        assert len(await requests_for(app, "j-1")) >= 2, "asked again by the scheduled job"
