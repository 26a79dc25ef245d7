"""The tiers migrations up and down on PostgreSQL and SQLite, 0004 giving the balances already kept no held
points, and segments working on SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from services.tiers.service import segmentation
from shared.db.migrations import alembic_config, upgrade
from tests.support import (
    db_name,
    db_url,
    deliver,
    ensure_postgres,
    recreate_schema,
    run_sql,
    scratch_database,
    service_client,
)
from tests.tiers.builders import enrolled, purchase

SEGMENT_TABLES = {"segment", "segment_run", "points_balance"}


async def tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    return names


async def down_and_up(url: str) -> None:
    assert await tables(url) >= SEGMENT_TABLES
    await asyncio.to_thread(command.downgrade, alembic_config("tiers", url), "0001")
    left = await tables(url)
    assert not SEGMENT_TABLES & left and "member" in left
    await asyncio.to_thread(upgrade, "tiers", url)
    assert await tables(url) >= SEGMENT_TABLES


async def test_postgresql_up_down_up(pg: None) -> None:
    url = db_url(db_name("loyalty_test_tiers_migrations"))
    await asyncio.to_thread(ensure_postgres, [db_name("loyalty_test_tiers_migrations")])
    await recreate_schema(url, "tiers")
    await down_and_up(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_0004_holds_nothing_of_the_balances_kept_matches_the_models_and_goes_back(
    backend: str, tmp_path: Path
) -> None:
    url = await scratch_database(backend, "tiers", tmp_path)
    await asyncio.to_thread(upgrade, "tiers", url, "0003")
    await run_sql(url, "INSERT INTO points_balance (member_id, available, pending, updated_at) "
                       "VALUES ('C-1', 70, 30, '2026-12-01 10:00:00')")
    await asyncio.to_thread(upgrade, "tiers", url, "head")
    assert await run_sql(url, "SELECT available, pending, held FROM points_balance") == [(70, 30, 0)]
    await asyncio.to_thread(command.check, alembic_config("tiers", url))  # the models match

    await asyncio.to_thread(command.downgrade, alembic_config("tiers", url), "0003")
    assert await run_sql(url, "SELECT * FROM points_balance") != []
    await asyncio.to_thread(upgrade, "tiers", url, "head")


async def test_sqlite_up_down_up_and_segments_on_it(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tiers.db'}"
    await asyncio.to_thread(upgrade, "tiers", url)
    await down_and_up(url)
    async with service_client("tiers", database_url=url) as (app, client):
        await deliver(app, enrolled("C-1", days_ago=400))
        await deliver(app, purchase("p-1", "C-1", "12.34", days_ago=3))
        run = await segmentation.recompute_segments(app.state.db)
        assert (run.members, run.scored, run.changed) == (1, 1, 1)
        got = (await client.get("/v1/members/C-1/segment")).json()
        assert (got["value_class"], got["lifecycle"], got["clv_estimate"]) == ("A", "active", "12.34")
        summary = (await client.get("/v1/analytics/summary")).json()
        assert summary["pareto"]["top_20pct_revenue_share"] == 0.2 and summary["segments"]["revenue"] == "12.34"
