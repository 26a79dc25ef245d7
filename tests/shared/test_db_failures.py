"""One reading of database failures, by what the database said and the connection's state (shared.db.failures),
on both databases: a refused value is 422 and keeps its pooled connection, only a server that does not answer
is 503, and no error text carries the statement's parameters."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import BigInteger, bindparam, select, text
from sqlalchemy.exc import DBAPIError

from shared.clock import utcnow
from shared.db.database import Database
from shared.db.driver import DriverStatement
from shared.db.failures import Failure, classify, describe
from shared.db.migrations import upgrade
from shared.messaging import events
from tests.support import deliver, service_client

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


def cursor_of(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


# Cursors no service gives out: of no shape, of the wrong shape, or values of the wrong type for the route.
FORGED_ANYWHERE = [[10**22], [-(10**22)], [1e308 * 10], [True], [[1]], [{"a": 1}], [None], [], [1, 2, 3], {"a": 1},
                   "1"]
FORGED_INTEGER = [*FORGED_ANYWHERE, [1, 2], ["not-a-number"], ["12"], [1.5], [2**63]]
FORGED_TEXT = [*FORGED_ANYWHERE, ["a", "b"], [12], [1.5], ["a\x00"], ["\ud800"]]
FORGED_MOMENT_TEXT = [*FORGED_ANYWHERE, ["2026-11-20T10:00:00Z"], ["2026-11-20T10:00:00", "m-1"],
                      [1795000000, "m-1"], ["2026-11-20T10:00:00Z", 5], ["2026-11-20T10:00:00Z", None],
                      ["not a time", "m-1"], ["0001-01-01T00:00:00+14:00", "m-1"],
                      ["9999-12-31T23:59:59-14:00", "m-1"], ["2026-11-20T10:00:00Z", "m\x00"]]
# service: (route, forged cursor values) for every paginated route
PAGES: dict[str, list[tuple[str, list[Any]]]] = {
    "points": [("/v1/members/M1/ledger", FORGED_INTEGER), ("/v1/earning-rules", FORGED_TEXT)],
    "rewards": [("/v1/rewards", FORGED_TEXT), ("/v1/members/M1/redemptions", FORGED_MOMENT_TEXT)],
    "tiers": [("/v1/members/M1/tier/history", FORGED_INTEGER), ("/v1/members/nobody/tier/history", FORGED_INTEGER)],
}


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
@pytest.mark.parametrize("service", sorted(PAGES))
async def test_forged_cursors_are_422_on_both_databases(
    service: str, backend: str, empty_db: Callable[[str], Awaitable[str]], tmp_path: Path
) -> None:
    """Refused by ``decode_cursor`` before any query (a member tiers never heard of included), never by the
    database, which would answer each in its own way."""
    if backend == "postgresql":
        overrides: dict[str, object] = {}
        await empty_db(service)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / f'{service}.db'}"
        await asyncio.to_thread(upgrade, service, url)
        overrides = {"database_url": url}
    async with service_client(service, **overrides) as (app, client):
        if service == "points":
            assert (await client.put("/v1/members/M1", json={"name": "Ada"})).status_code == 201
        elif service == "tiers":
            assert await deliver(app, events.MemberEnrolled(member_id="M1", status="active",
                                                            enrolled_at=utcnow())) == "handled"
        for route, forged in PAGES[service]:
            cursors = [cursor_of(values) for values in forged] + ["%%%", "bm90IGpzb24", "W10", "x" * 512]
            for cursor in cursors:
                answer = await client.get(route, params={"cursor": cursor})
                assert answer.status_code == 422, (route, cursor, answer.text)
                problem = answer.json()
                assert problem["type"] == "/problems/validation-error", (route, cursor, problem)
                assert problem["errors"][0]["loc"] == ["query", "cursor"], (route, cursor, problem)
        for route, _ in PAGES[service]:
            if "nobody" not in route:
                assert (await client.get(route)).status_code == 200, route  # nothing broken meanwhile
