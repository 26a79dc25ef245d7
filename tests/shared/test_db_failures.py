"""One reading of database failures, by what the database said and the connection's state (shared.db.failures),
on both databases: a refused value is 422 and keeps its pooled connection, only a server that does not answer
is 503, and no error text carries the statement's parameters."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BigInteger, bindparam, select, text
from sqlalchemy.exc import DBAPIError

from shared.db.database import Database
from shared.db.driver import DriverStatement
from shared.db.failures import Failure, classify, describe
from shared.db.migrations import upgrade
from tests.support import service_client

EMAIL = "ada.lovelace@example.com"


async def failure_of(db: Database, sql: str, params: dict[str, object] | None = None) -> BaseException:
    with pytest.raises(Exception) as caught:
        async with db.transaction() as session:
            await session.execute(text(sql), params or {})
    return caught.value


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'points.db'}"
    await asyncio.to_thread(upgrade, "points", url)
    database = Database(url)
    yield database
    await database.dispose()


async def test_postgresql_failures_read_by_sqlstate(db: Database) -> None:
    refused_nul = await failure_of(db, "SELECT CAST(:v AS text)", {"v": "a\x00b"})
    refused_cast = await failure_of(db, "SELECT CAST(:v AS integer)", {"v": EMAIL})
    refused_encode = await failure_of(db, "SELECT CAST(:v AS bigint)", {"v": 10**22})  # the driver's own refusal
    contended = await failure_of(db, "INSERT INTO inbox (event_id, event_type, handled_at) VALUES "
                                     "('x', 't', now()), ('x', 't', now())")
    bug = await failure_of(db, "SELECT * FROM no_such_table")
    assert [classify(e) for e in (refused_nul, refused_cast, refused_encode, contended, bug)] == [
        Failure.REFUSED, Failure.REFUSED, Failure.REFUSED, Failure.CONTENDED, Failure.BUG]
    for failure in (refused_cast, refused_encode):
        assert "[SQL parameters hidden" in str(failure)  # the engine's hide_parameters
        # what logs and dead letters carry: the reading, not the driver's message (which quotes the value)
        assert EMAIL not in describe(failure) and "10000000000000000000000" not in describe(failure)


async def test_a_terminated_connection_is_unavailable(db: Database) -> None:
    async with db.engine.connect() as admin:
        await admin.execute(text("SELECT 1"))
    with pytest.raises(DBAPIError) as caught:
        async with db.transaction() as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with db.engine.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                await other.commit()
            await session.execute(text("SELECT 1"))
    assert classify(caught.value) is Failure.UNAVAILABLE


async def test_a_value_the_driver_refuses_keeps_its_pooled_connection(db: Database) -> None:
    """asyncpg refuses to encode an integer beyond int64 before sending anything: the connection is fine, so
    the fast path must neither report the database away nor throw the connection out of the pool."""
    statement = DriverStatement(select(bindparam("v", type_=BigInteger).label("v")))
    await statement.read(db.engine, {"v": 1})
    pool: Any = db.engine.pool
    before = pool.checkedin()
    with pytest.raises(DBAPIError) as caught:
        await statement.read(db.engine, {"v": 10**22})
    assert classify(caught.value) is Failure.REFUSED and not caught.value.connection_invalidated
    assert pool.checkedin() == before
    assert (await statement.read(db.engine, {"v": 2}))[0].v == 2


async def test_sqlite_failures_read_alike(sqlite_db: Database) -> None:
    overflow = await failure_of(sqlite_db, "SELECT :v", {"v": 10**22})
    bug = await failure_of(sqlite_db, "SELECT * FROM no_such_table")
    assert [classify(overflow), classify(bug)] == [Failure.REFUSED, Failure.BUG]


def cursor_of(values: Sequence[object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_forged_cursors_are_422_on_both_databases(
    backend: str, empty_db: Callable[[str], Awaitable[str]], tmp_path: Path
) -> None:
    if backend == "postgresql":
        overrides: dict[str, object] = {}
        await empty_db("points")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'points.db'}"
        await asyncio.to_thread(upgrade, "points", url)
        overrides = {"database_url": url}
    async with service_client("points", **overrides) as (_, client):
        assert (await client.put("/v1/members/M1", json={"name": "Ada"})).status_code == 201
        for values in ([10**22], [-(10**22)], [1e308 * 10], [True], [[1]], [{"a": 1}], [1, 2]):
            answer = await client.get("/v1/members/M1/ledger", params={"cursor": cursor_of(values)})
            assert answer.status_code == 422, (values, answer.text)
            assert answer.json()["type"] == "/problems/validation-error"
        for cursor in ("%%%", "bm90IGpzb24", cursor_of(["not-a-number"])):
            assert (await client.get("/v1/members/M1/ledger", params={"cursor": cursor})).status_code == 422
        assert (await client.get("/v1/members/M1/ledger")).status_code == 200  # nothing broken meanwhile
