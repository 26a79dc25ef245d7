"""The simulation figure: ``POST /v1/earning-rules/simulate`` over purchases seeded in bulk SQL into points'
database (100,000 in a full run), beside a plain SELECT of the same rows on asyncpg in the same run.

The issue's target is 100,000 purchases in under 10 s, so the target here is 100 us per purchase whatever
the count (QUICK seeds fewer). The ratio says what the replay costs over reading the rows at all."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.report import Row, ratio
from bench.seed import expect
from bench.system import System

TARGET_SECONDS_EACH = 10 / 100_000
RUNS = 3  # each timing is the median of this many
DAYS = 30
# Stored before the figure (ids get the run's prefix), then changed by the proposal: a multiplier replaced,
# a bonus removed, a limited multiplier and a basket bonus added.
RULES: list[dict[str, Any]] = [
    {"kind": "multiplier", "rule_id": "grocery", "factor": "2", "match": {"categories": ["grocery"]}},
    {"kind": "bonus", "rule_id": "welcome", "points": 50, "trigger": "first_purchase"},
    {"kind": "multiplier", "rule_id": "weekend", "factor": "1.5", "match": {"channels": ["pos"]},
     "days_of_week": [6, 7]},
]


def proposal(prefix: str, start: datetime) -> dict[str, Any]:
    return {
        "rules": [
            {"kind": "multiplier", "rule_id": f"{prefix}grocery", "factor": "3", "match": {"categories": ["grocery"]}},
            {"kind": "multiplier", "rule_id": f"{prefix}drinks", "factor": "2", "match": {"categories": ["drinks"]},
             "limits": {"per_member_points": 40, "per_member_period": "week", "budget_points": 500_000}},
            {"kind": "bonus", "rule_id": f"{prefix}basket", "points": 20, "trigger": "min_spend", "min_spend": "40"},
        ],
        "remove": [f"{prefix}welcome"],
        "from": start.isoformat(), "to": (start + timedelta(days=DAYS)).isoformat(),
    }


def window_start(now: datetime | None = None) -> datetime:
    """Ninety days back, at midnight: before every purchase the other figures post (they are at now)."""
    moment = (now or datetime.now(UTC)) - timedelta(days=90)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


# The basket of bench/wrk/purchase.lua, on a member of ``members``, spread evenly over the window.
LINES = json.dumps([{"sku": "A-1", "category": "grocery", "quantity": 2, "unit_price": "10.00"},
                    {"sku": "B-2", "category": "household", "quantity": 1, "unit_price": "12.50"},
                    {"sku": "C-3", "category": "drinks", "quantity": 5, "unit_price": "2.00"}])
SEED_SQL = """
INSERT INTO purchase (purchase_id, member_id, store_id, channel, occurred_at, currency, total, refunded_amount,
    points_earned, bonus_points, points_reversed, lines, recorded_at, points_paid, points_paid_value,
    points_returned)
SELECT :prefix || n, :member_prefix || ((n * 7919) % :members), 'store-' || (n % 50),
    CASE WHEN n % 4 = 0 THEN 'app' ELSE 'pos' END,
    CAST(:start AS timestamptz) + (n * CAST(:step AS double precision)) * interval '1 second', 'USD', 42.50, 0,
    42, 0, 0,
    CAST(:lines AS json),
    CAST(:start AS timestamptz) + (n * CAST(:step AS double precision)) * interval '1 second', 0, 0, 0
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n
"""


async def seed_purchases(db_url: str, prefix: str, member_prefix: str, members: int, count: int, start: datetime,
                         chunk: int = 50_000) -> float:
    """``count`` purchases ``<prefix><n>`` of members ``<member_prefix>0`` ... in [start, start + DAYS), in
    multi-row INSERT ... SELECTs of ``chunk``, then ANALYZE; returns the seconds it took."""
    began = time.monotonic()
    step = DAYS * 86_400 / count
    engine = create_async_engine(db_url)
    try:
        for first in range(0, count, chunk):
            async with engine.begin() as conn:
                await conn.execute(text("SET LOCAL synchronous_commit = off"))
                await conn.execute(text(SEED_SQL), {
                    "prefix": prefix, "lines": LINES, "member_prefix": member_prefix, "members": members,
                    "start": start, "step": step, "first": first, "last": min(first + chunk, count) - 1})
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE purchase"))
    finally:
        await engine.dispose()
    return time.monotonic() - began


async def plain_read(db_url: str, start: datetime, end: datetime) -> tuple[float, int]:
    """The reference: every column of the same rows, in the same order, read on asyncpg (no parsing)."""
    connection = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        began = time.monotonic()
        rows = await connection.fetch(
            "SELECT * FROM purchase WHERE occurred_at >= $1 AND occurred_at < $2 ORDER BY recorded_at, purchase_id",
            start, end)
        return time.monotonic() - began, len(rows)
    finally:
        await connection.close()


async def figure(system: System, db_url: str, *, members: int, count: int, run_id: str,
                 say: Callable[[str], None] = print) -> dict[str, Any]:
    prefix = f"{run_id}-sim-"
    start = window_start()
    async with system.client("points", timeout=300) as points:
        for rule in RULES:
            expect(await points.post("/v1/earning-rules", json={**rule, "rule_id": prefix + rule["rule_id"]}),
                   200, 201)
        seeded = await seed_purchases(db_url, prefix, "B-", members, count, start)
        say(f"  seeded {count:,} purchases in {seeded:.1f}s")
        body = proposal(prefix, start)
        timings: list[float] = []
        answer: dict[str, Any] = {}
        for _ in range(RUNS):
            began = time.monotonic()
            answer = expect(await points.post("/v1/earning-rules/simulate", json=body), 200).json()
            timings.append(time.monotonic() - began)
    references = [await plain_read(db_url, start, start + timedelta(days=DAYS)) for _ in range(RUNS)]
    seconds, reference = statistics.median(timings), statistics.median(t for t, _ in references)
    return {"purchases": answer["purchases"], "seeded": count, "members": answer["members"],
            "seconds": round(seconds, 3), "runs": [round(t, 3) for t in timings],
            "reference_seconds": round(reference, 3), "reference_rows": references[0][1],
            "seed_seconds": round(seeded, 1), "current_points": answer["current"]["points"],
            "proposed_points": answer["proposed"]["points"], "valid": answer["purchases"] == count}


def row(measured: dict[str, Any]) -> Row:
    """The simulation's time beside the plain read of its rows; met under 100 us a purchase (10 s per 100,000)."""
    count, seconds = measured["purchases"], measured["seconds"]
    limit = TARGET_SECONDS_EACH * measured["seeded"]
    text = f"{seconds:.2f} s ({count / seconds:,.0f} purchases/s)" if seconds else "-"
    if not measured["valid"]:
        text += f" INVALID ({count:,} purchases in the range, {measured['seeded']:,} seeded)"
    return Row(f"rule simulation ({measured['seeded']:,} purchases)", text,
               f"plain SELECT of the rows {measured['reference_seconds']:.2f} s",
               ratio(seconds, measured["reference_seconds"]), f"< {limit:g} s",
               bool(measured["valid"] and seconds < limit))
