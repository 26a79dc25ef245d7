"""The statements that run on asyncpg directly (``shared.db.driver``) answer as SQLAlchemy would: the same rows
and types, the same problems for the same failures, and a connection the server dropped leaves the pool."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import select, text

from services.points.models import Member, Program
from services.points.service import balances
from shared.db.database import Database
from shared.db.driver import DriverStatement
from tests.points.builders import purchase


async def test_rows_and_types_are_those_of_sqlalchemy(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.put("/v1/members/drv-1", json={"name": "Ada", "birth_date": "1990-02-03"})
    assert (await client.post("/v1/purchases", json=purchase("drv-p1", "drv-1", "12.34"))).status_code == 201
    db: Database = app.state.db
    statement = (select(Member.__table__, Program.__table__.c.points_per_unit, Program.__table__.c.excluded_categories)
                 .join(Program.__table__, Program.__table__.c.id == 1).where(Member.member_id == "drv-1"))
    async with db.transaction() as session:
        expected = (await session.execute(statement)).all()
        in_transaction = await DriverStatement(statement).run_in(session, {})
    alone = await DriverStatement(statement).read(db.engine, {})
    assert [tuple(row) for row in in_transaction] == [tuple(row) for row in alone] == [tuple(r) for r in expected]
    row = alone[0]
    assert row.enrolled_at.tzinfo is not None and row.birth_date.isoformat() == "1990-02-03"
    assert isinstance(row.excluded_categories, list)


async def test_a_value_the_database_cannot_store_is_422_and_nothing_is_written(client: httpx.AsyncClient) -> None:
    await client.put("/v1/members/drv-2", json={})
    answer = await client.post("/v1/purchases", json=purchase("drv-p2", "drv-2", channel="po\u0000s"))
    assert answer.status_code == 422 and answer.json()["type"] == "/problems/validation-error"
    balance = (await client.get("/v1/members/drv-2/balance")).json()
    assert balance["available"] == 0 and balance["lifetime_earned"] == 0
    # The purchase id was not used up by the refused request.
    assert (await client.post("/v1/purchases", json=purchase("drv-p2", "drv-2"))).status_code == 201


async def test_connections_the_server_dropped_answer_503_then_leave_the_pool(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await client.put("/v1/members/drv-3", json={})
    db: Database = app.state.db
    # Several pooled connections opened at once, then the server drops every one of them.
    await asyncio.gather(*(balances.balance(db, "drv-3") for _ in range(5)))
    async with db.engine.connect() as admin:
        await admin.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        await admin.commit()
    statuses = [(await client.get("/v1/members/drv-3/balance")).status_code for _ in range(30)]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[-10:] == [200] * 10, f"dropped connections stayed in the pool: {statuses}"
