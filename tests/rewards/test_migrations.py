"""The rewards migrations on both databases the service runs on: from a 0001 database holding redemptions to
head and back, matching the models (``alembic check``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.migrations import alembic_config, empty_schema, upgrade
from tests.support import db_name, db_url, ensure_postgres
from tests.support import run_sql as sql

SCRATCH_PG = db_name("loyalty_test_rewards_migrations")  # its own database: nothing else is disturbed


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'rewards.db'}"
        return
    await asyncio.to_thread(ensure_postgres, [SCRATCH_PG])
    url = db_url(SCRATCH_PG)
    await empty_schema(url)
    yield url


async def redemption_columns(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("redemption")})
    finally:
        await engine.dispose()


async def test_0002_gives_existing_redemptions_one_ask_at_their_creation(empty_url: str) -> None:
    await asyncio.to_thread(upgrade, "rewards", empty_url, "0001")
    created = "2026-01-02 10:00:00"
    await sql(empty_url, "INSERT INTO reward (reward_id, name, points_cost, stock, stock_left, active, created_at, "
                         "updated_at) VALUES ('cup', 'Cup', 100, 5, 3, true, '2026-01-01 10:00:00', "
                         "'2026-01-01 10:00:00')")
    for rid, status in (("r-pending", "pending"), ("r-confirmed", "confirmed")):
        await sql(empty_url, "INSERT INTO redemption (redemption_id, member_id, reward_id, quantity, points_cost, "
                             f"status, created_at, updated_at) VALUES ('{rid}', 'ada', 'cup', 1, 100, '{status}', "
                             f"'{created}', '{created}')")

    await asyncio.to_thread(upgrade, "rewards", empty_url, "head")
    rows = await sql(empty_url, "SELECT redemption_id, last_requested_at, created_at, asks FROM redemption "
                                "ORDER BY redemption_id")
    assert [(rid, asks) for rid, _, _, asks in rows] == [("r-confirmed", 1), ("r-pending", 1)]
    assert all(last_requested_at == created_at and last_requested_at is not None
               for _, last_requested_at, created_at, _ in rows)
    await asyncio.to_thread(command.check, alembic_config("rewards", empty_url))  # the models match

    await asyncio.to_thread(command.downgrade, alembic_config("rewards", empty_url), "0001")
    assert {"last_requested_at", "asks"}.isdisjoint(await redemption_columns(empty_url))
    assert len(await sql(empty_url, "SELECT * FROM redemption")) == 2
    await asyncio.to_thread(upgrade, "rewards", empty_url, "head")
    assert {"last_requested_at", "asks"} <= await redemption_columns(empty_url)


async def test_0004_makes_existing_redemptions_members(empty_url: str) -> None:
    await asyncio.to_thread(upgrade, "rewards", empty_url, "0003")
    await sql(empty_url, "INSERT INTO reward (reward_id, name, points_cost, stock, stock_left, active, created_at, "
                         "updated_at) VALUES ('cup', 'Cup', 100, 5, 4, true, '2026-01-01 10:00:00', "
                         "'2026-01-01 10:00:00')")
    await sql(empty_url, "INSERT INTO redemption (redemption_id, member_id, reward_id, quantity, points_cost, status, "
                         "created_at, updated_at, last_requested_at, asks) VALUES ('r-1', 'ada', 'cup', 1, 100, "
                         "'pending', '2026-01-02 10:00:00', '2026-01-02 10:00:00', '2026-01-02 10:00:00', 1)")
    await asyncio.to_thread(upgrade, "rewards", empty_url, "head")
    assert await sql(empty_url, "SELECT redemption_id, source FROM redemption") == [("r-1", "member")]
    await asyncio.to_thread(command.check, alembic_config("rewards", empty_url))

    await asyncio.to_thread(command.downgrade, alembic_config("rewards", empty_url), "0003")
    assert "source" not in await redemption_columns(empty_url)
    assert len(await sql(empty_url, "SELECT * FROM redemption")) == 1
