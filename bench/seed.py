"""Test data: members through the API, and for the scale figure members, ledger entries and lots in bulk SQL.

The bulk rows keep the points invariant (ledger.py): each member's entries are ``earn`` entries of
``POINTS_PER_ENTRY`` whose ``balance_after`` counts up, one lot per entry with its whole value remaining and
an expiry a year ahead, and the member row's ``available`` / ``lifetime_earned`` equal the ledger's sum.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.system import System

POINTS_PER_ENTRY = 10
TIER_PROGRAM = {
    "basis": "spend", "window_days": 365, "retention_days": 365, "downgrade": "to_qualified",
    "tiers": [
        {"tier_id": "base", "name": "Base", "threshold": "0", "earn_multiplier": "1", "perks": []},
        {"tier_id": "plus", "name": "Plus", "threshold": "1.00", "earn_multiplier": "2", "perks": []},
    ],
}
REWARD_ID = "bench-cup"


async def concurrently(items: Iterable[str], work: Callable[[str], Awaitable[None]], concurrency: int = 64) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            await work(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def expect(response: httpx.Response, *statuses: int) -> httpx.Response:
    if response.status_code not in statuses:
        raise RuntimeError(f"{response.request.method} {response.request.url} answered {response.status_code}: "
                           f"{response.text[:500]}")
    return response


async def enroll(system: System, member_ids: Iterable[str]) -> float:
    """PUT each member (64 at a time); returns members per second."""
    ids = list(member_ids)
    started = time.monotonic()
    async with system.client("points") as points:
        async def put(member_id: str) -> None:
            for attempt in range(3):  # a keep-alive connection the server closed just then; PUT is idempotent
                try:
                    answer = await points.put(f"/v1/members/{member_id}", json={"name": f"Bench {member_id}"})
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            expect(answer, 200, 201)

        await concurrently(ids, put)
    return len(ids) / (time.monotonic() - started)


async def grant(system: System, member_ids: Iterable[str], points: int, run_id: str, purpose: str = "grant",
                concurrency: int = 16) -> None:
    """An admin adjustment to each member (id ``<run>-<purpose>-<member>``), so that redemptions are paid."""
    async with system.client("points") as client:
        async def adjust(member_id: str) -> None:
            expect(await client.post(f"/v1/members/{member_id}/adjustments", json={
                "adjustment_id": f"{run_id}-{purpose}-{member_id}", "points": points, "reason": "benchmark"}),
                200, 201)

        await concurrently(member_ids, adjust, concurrency=concurrency)


async def program(system: System) -> None:
    """Reads points' program once before the concurrent seeding: the first request creates its row, and
    concurrent first requests race on that insert (a 500 on all but one)."""
    async with system.client("points") as points:
        expect(await points.get("/v1/program"), 200)


async def tier_program(system: System) -> None:
    """Two tiers, the second reached by any purchase of 1.00 or more (the end-to-end figure's trigger)."""
    async with system.client("tiers") as tiers:
        expect(await tiers.put("/v1/tiers", json=TIER_PROGRAM), 200)


async def reward(system: System) -> None:
    async with system.client("rewards") as rewards:
        expect(await rewards.put(f"/v1/rewards/{REWARD_ID}", json={
            "name": "Bench cup", "points_cost": 10, "stock": None}), 200, 201)


async def bulk_members(db_url: str, prefix: str, first: int, count: int, entries_per_member: int,
                       chunk: int = 50_000, say: Callable[[str], None] = print) -> None:
    """Members ``<prefix><first>`` ... with ``entries_per_member`` ledger entries and lots each, in chunks
    (one transaction each), then ANALYZE."""
    engine = create_async_engine(db_url)
    try:
        for start in range(first, first + count, chunk):
            end = min(start + chunk, first + count)
            began = time.monotonic()
            # Whole numbers are formatted in (they are ints); the member prefix stays a bound parameter.
            rows = f"generate_series({int(start)}, {int(end) - 1}) AS n"
            total = POINTS_PER_ENTRY * int(entries_per_member)
            async with engine.begin() as conn:
                await conn.execute(text("SET LOCAL synchronous_commit = off"))
                await conn.execute(text(
                    "INSERT INTO member (member_id, name, status, enrolled_at, updated_at, earn_multiplier, "
                    "available, pending, lifetime_earned, lifetime_spent, purchase_count, referral_code) "
                    f"SELECT :prefix || n, 'Scale ' || n, 'active', now() - interval '400 days', now(), 1, "
                    f"{total}, 0, {total}, 0, {int(entries_per_member)}, upper(md5(:prefix || n)) FROM {rows}"
                ), {"prefix": prefix})
                await conn.execute(text(
                    "INSERT INTO ledger_entry (member_id, kind, points, balance_after, occurred_at, purchase_id) "
                    f"SELECT :prefix || n, 'earn', {POINTS_PER_ENTRY}, {POINTS_PER_ENTRY} * i, "
                    "now() - interval '300 days' + i * interval '1 day', :prefix || n || '-p' || i "
                    f"FROM {rows}, generate_series(1, {int(entries_per_member)}) AS i"
                ), {"prefix": prefix})
                await conn.execute(text(
                    "INSERT INTO lot (member_id, entry_id, points, remaining, earned_at, expires_at, available_at, "
                    "pending) SELECT e.member_id, e.entry_id, e.points, e.points, e.occurred_at, "
                    "e.occurred_at + interval '365 days', e.occurred_at, false FROM ledger_entry e "
                    f"WHERE e.member_id IN (SELECT :prefix || n FROM {rows})"
                ), {"prefix": prefix})
            say(f"  seeded {end - first:,}/{count:,} members "
                f"({(end - start) * entries_per_member / (time.monotonic() - began):,.0f} entries/s)")
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE member, ledger_entry, lot"))
    finally:
        await engine.dispose()


async def counts(db_url: str) -> dict[str, int]:
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            result = {}
            for table in ("member", "ledger_entry", "lot"):
                result[table] = (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
            return result
    finally:
        await engine.dispose()
