"""Segments end to end: a few hundred generated members with known purchase histories go through points as
real processes and real Kafka into tiers; their value classes, lifecycles, RFM scores and CLV are computed
here by hand from the generated data and compared; then the tiers state is rebuilt from the Kafka log into an
empty database with ``loyalty rebuild tiers`` and compared with the live one.

The services run on databases of their own (``loyalty_sys_seg_*``), so system tests of other parts running at
the same time cannot empty them under this one.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from random import Random
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.migrations import empty_schema
from shared.messaging.kafka import all_topic_names, delete_topics
from tests.support import ROOT, db_name, db_url, ensure_postgres, recreate_schema
from tests.system.harness import System, eventually
from tests.tiers.snapshots import tiers_state

pytestmark = pytest.mark.system

DATABASES = {"points": db_name("loyalty_sys_seg_points"), "tiers": db_name("loyalty_sys_seg_tiers")}
REBUILD_DATABASE = db_name("loyalty_sys_rebuild")
MEMBERS = 300
SEED = 20261120
WINDOW, RECENCY, NEW = timedelta(days=365), timedelta(days=90), timedelta(days=30)
TIERS = {
    "basis": "spend", "window_days": 365, "retention_days": 365, "downgrade": "to_qualified",
    "tiers": [
        {"tier_id": "bronze", "name": "Bronze", "threshold": "0", "earn_multiplier": "1", "perks": []},
        {"tier_id": "silver", "name": "Silver", "threshold": "500", "earn_multiplier": "1.5", "perks": []},
        {"tier_id": "gold", "name": "Gold", "threshold": "1500", "earn_multiplier": "2", "perks": []},
    ],
}


@pytest.fixture(scope="module")
def system(pg: None, kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """points and tiers as processes on their own fresh databases, real Kafka, a private topic prefix."""
    ensure_postgres([*DATABASES.values(), REBUILD_DATABASE])
    urls = {name: db_url(database) for name, database in DATABASES.items()}

    async def prepare() -> None:
        for name, url in urls.items():
            await recreate_schema(url, name)

    asyncio.run(prepare())
    prefix = f"t{uuid.uuid4().hex[:8]}."
    running = System(urls, kafka, prefix, tmp_path_factory.mktemp("segment-logs"))
    try:
        running.start()
        yield running
    finally:
        running.stop()
        asyncio.run(delete_topics(kafka, all_topic_names(prefix)))


# --- the generated program --------------------------------------------------------------------------


@dataclass
class Sale:
    purchase_id: str
    occurred_at: datetime
    total: Decimal
    refunded: Decimal = Decimal(0)

    @property
    def net(self) -> Decimal:
        return self.total - self.refunded


@dataclass
class Person:
    member_id: str
    sales: list[Sale] = field(default_factory=list)
    suspended: bool = False
    enrolled_at: datetime | None = None  # as points tells it


def generate(start: datetime) -> list[Person]:
    """Members in six kinds of history (none or one purchase, steady, fading, gone, come back, random), with
    amounts from a long tail so that a few members make most of the revenue."""
    rnd = Random(SEED)
    people: list[Person] = []

    def amount() -> Decimal:
        value = rnd.lognormvariate(3.5, 1.1) if rnd.random() > 0.05 else rnd.uniform(800, 2500)
        return Decimal(str(round(min(max(value, 1.0), 5000.0), 2))).quantize(Decimal("0.01"))

    for index in range(MEMBERS):
        kind = index % 6
        if kind == 0:
            days = [rnd.uniform(0, 700)] if rnd.random() < 0.6 else []
        elif kind == 1:  # steady: purchases at most 150 days apart, the last within 80 days
            days = [rnd.uniform(1, 80)]
            while rnd.random() < 0.8 and days[-1] < 600:
                days.append(days[-1] + rnd.uniform(5, 150))
        elif kind == 2:  # fading: the last purchase 95-175 days ago
            days = [rnd.uniform(95, 175), rnd.uniform(180, 500)]
        elif kind == 3:  # gone: the last purchase 185-700 days ago
            days = sorted(rnd.uniform(185, 720) for _ in range(rnd.randint(1, 4)))
        elif kind == 4:  # come back: a return within 85 days after a long silence
            back = rnd.uniform(1, 85)
            days = [back, *(back + rnd.uniform(190, 300) + rnd.uniform(0, 200) * i for i in range(rnd.randint(1, 3)))]
            days += [rnd.uniform(0, back) for _ in range(rnd.randint(0, 2))]
        else:
            days = [rnd.uniform(0, 730) for _ in range(rnd.randint(2, 10))]
        person = Person(f"seg-{index:03d}")
        for number, day in enumerate(days):
            moment = (start - timedelta(days=day)).replace(microsecond=0)
            person.sales.append(Sale(f"{person.member_id}-{number}", moment, amount()))
        people.append(person)
    for person in rnd.sample([p for p in people if p.sales], 25):  # partial and full refunds
        sale = rnd.choice(person.sales)
        sale.refunded = sale.total if rnd.random() < 0.4 else (sale.total / 2).quantize(Decimal("0.01"))
    for person in rnd.sample([p for p in people if p.sales], 8):
        person.suspended = True
    return people


# --- the rules, computed by hand from the generated data --------------------------------------------


@dataclass
class Expected:
    value_class: dict[str, str]
    lifecycle: dict[str, str]
    rfm: dict[str, tuple[int, int, int]]
    clv: dict[str, Decimal]
    pareto: float | None


def by_hand(people: list[Person], now: datetime) -> Expected:
    """docs/segments.md, written out plainly (and independently of services/tiers/domain/segments.py)."""
    bought = {p.member_id: sorted(s.occurred_at for s in p.sales if s.net > 0) for p in people}
    in_window = {p.member_id: [s for s in p.sales if s.net > 0 and s.occurred_at >= now - WINDOW] for p in people}
    revenue = {m: sum((s.net for s in sales), Decimal(0)) for m, sales in in_window.items()}
    base = [p.member_id for p in people if not p.suspended and bought[p.member_id]]
    total = sum(revenue[m] for m in base)

    value_class = {p.member_id: "D" for p in people}
    for m in base:
        if revenue[m] > 0:
            start = sum(revenue[o] for o in base if revenue[o] > revenue[m]) / total
            value_class[m] = "A" if start < Decimal("0.5") else "B" if start < Decimal("0.8") else \
                "C" if start < Decimal("0.95") else "D"

    def score(values: dict[str, Any], m: str) -> int:
        below = sum(1 for o in base if values[o] < values[m])
        return 1 + (5 * below) // len(base)

    last = {m: bought[m][-1] for m in base}
    count = {m: len(in_window[m]) for m in base}
    rfm = {p.member_id: (1, 1, 1) for p in people}
    for m in base:
        rfm[m] = (score(last, m), score(count, m), score(revenue, m))

    lifecycle = {}
    for p in people:
        dates = bought[p.member_id]
        assert p.enrolled_at is not None
        idle = now - (dates[-1] if dates else p.enrolled_at)
        returns = [dates[i] for i in range(1, len(dates)) if dates[i] - dates[i - 1] > 2 * RECENCY]
        if now - p.enrolled_at <= NEW and len(dates) <= 1:
            lifecycle[p.member_id] = "new"
        elif idle > 2 * RECENCY:
            lifecycle[p.member_id] = "lapsed"
        elif idle > RECENCY or not dates:
            lifecycle[p.member_id] = "at_risk"
        elif returns and now - returns[-1] <= RECENCY:
            lifecycle[p.member_id] = "won_back"
        else:
            lifecycle[p.member_id] = "active"

    previous = [m for m, dates in bought.items() if any(now - 2 * WINDOW <= d < now - WINDOW for d in dates)]
    again = [m for m in previous if in_window[m]]
    r = min(Decimal(len(again)) / len(previous), Decimal("0.95")) if previous else Decimal("0.5")
    years = r / (1 - r)
    clv = {p.member_id: Decimal("0.00") for p in people}
    for m in base:
        if count[m]:
            clv[m] = (revenue[m] / count[m] * count[m] * years).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    ranked = sorted((revenue[m] for m in base), reverse=True)
    fifth = Decimal(len(ranked)) / 5
    whole = int(fifth)
    top = sum(ranked[:whole], Decimal(0)) + ((fifth - whole) * ranked[whole] if whole < len(ranked) else 0)
    return Expected(value_class, lifecycle, rfm, clv, float(top / sum(ranked)) if sum(ranked) else None)


# --- the test ---------------------------------------------------------------------------------------


def purchase_body(person: Person, sale: Sale) -> dict[str, Any]:
    return {"purchase_id": sale.purchase_id, "member_id": person.member_id, "store_id": "store-1", "channel": "pos",
            "occurred_at": sale.occurred_at.isoformat().replace("+00:00", "Z"), "currency": "USD",
            "total": str(sale.total)}


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def window_spend(person: Person, window_start: datetime) -> Decimal:
    return sum((max(s.net, Decimal(0)) for s in person.sales if s.occurred_at >= window_start), Decimal(0))


def test_generated_members_get_the_segments_computed_by_hand_and_a_rebuild_gets_the_same(
    system: System, tmp_path: Path
) -> None:
    points, tiers = system.client("points"), system.client("tiers")
    assert points.put("/v1/program", json={"currency": "USD", "points_per_unit": "1", "expiry_days": 36_500,
                                           "pending_days": 0, "excluded_categories": []}).status_code == 200
    assert tiers.put("/v1/tiers", json=TIERS).status_code == 200

    people = generate(datetime.now(UTC))
    for person in people:
        answer = points.put(f"/v1/members/{person.member_id}", json={})
        assert answer.status_code == 201, answer.text
        person.enrolled_at = parse(answer.json()["enrolled_at"])
    bodies = [purchase_body(p, s) for p in people for s in p.sales]
    for chunk in range(0, len(bodies), 1000):
        results = points.post("/v1/purchases/batch", json={"purchases": bodies[chunk:chunk + 1000]}).json()["results"]
        assert [r["status"] for r in results] == [201] * len(results), [r for r in results if r["status"] != 201][:3]
    for person in people:
        for sale in person.sales:
            if sale.refunded:
                refunded = points.post(f"/v1/purchases/{sale.purchase_id}/refunds", json={
                    "refund_id": f"{sale.purchase_id}-rf", "amount": str(sale.refunded),
                    "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")})
                assert refunded.status_code == 201, refunded.text
        if person.suspended:
            assert points.put(f"/v1/members/{person.member_id}", json={"status": "suspended"}).status_code == 200

    # tiers has consumed everything: every member's spend, their statuses and every balance
    liability = sum(max(b["available"] + b["pending"] + b["held"], 0) for b in
                    (points.get(f"/v1/members/{p.member_id}/balance").json() for p in people))
    suspended = sum(p.suspended for p in people)

    def summary_caught_up() -> bool:
        summary = tiers.get("/v1/analytics/summary").json()
        return bool(summary["members"] == MEMBERS and summary["by_status"]["suspended"] == suspended
                    and summary["points_liability"] == liability)

    eventually(summary_caught_up, "tiers has every member, status and balance", timeout=120, interval=0.5)
    tier_of: dict[str, str] = {}

    def spend_caught_up() -> bool:
        for person in people:
            if person.member_id in tier_of:
                continue
            got = tiers.get(f"/v1/members/{person.member_id}/tier").json()
            if Decimal(got["qualifying_value"]) != window_spend(person, parse(got["window_start"])):
                return False
            tier_of[person.member_id] = got["tier_id"]
        return True

    eventually(spend_caught_up, "tiers has every member's spend", timeout=120, interval=0.5)
    refunds = sum(1 for p in people for s in p.sales if s.refunded)
    facts = "SELECT (SELECT count(*) FROM purchase), (SELECT count(*) FROM refund WHERE amount > 0)"
    eventually(lambda: asyncio.run(one_row(db_url(DATABASES["tiers"]), facts)) == (len(bodies), refunds),
               "tiers has every purchase and refund, also those outside the window", timeout=60, interval=0.5)

    run = tiers.post("/v1/jobs/segments")
    assert run.status_code == 200, run.text
    ran = run.json()
    assert (ran["members"], ran["changed"]) == (MEMBERS, MEMBERS)
    now = parse(ran["computed_at"])
    expected = by_hand(people, now)
    assert set(expected.lifecycle.values()) == {"new", "active", "at_risk", "lapsed", "won_back"}, "all kinds"
    assert set(expected.value_class.values()) == {"A", "B", "C", "D"}

    mismatches = []
    for person in people:
        got = tiers.get(f"/v1/members/{person.member_id}/segment").json()
        m = person.member_id
        want = {"value_class": expected.value_class[m], "lifecycle": expected.lifecycle[m],
                "rfm": dict(zip(("recency", "frequency", "monetary"), expected.rfm[m], strict=True)),
                "clv_estimate": str(expected.clv[m])}
        if {k: got[k] for k in want} != want:
            mismatches.append((m, got, want))
    assert not mismatches, mismatches[:5]

    summary = tiers.get("/v1/analytics/summary").json()
    assert summary["members"] == MEMBERS
    assert summary["by_tier"] == {t: Counter(tier_of.values())[t] for t in ("bronze", "silver", "gold")}
    assert summary["by_value_class"] == {c: Counter(expected.value_class.values())[c] for c in "ABCD"}
    assert summary["by_lifecycle"] == {c: Counter(expected.lifecycle.values())[c]
                                       for c in ("new", "active", "at_risk", "lapsed", "won_back")}
    assert summary["pareto"]["top_20pct_revenue_share"] == pytest.approx(expected.pareto, abs=1e-5)
    assert summary["points_liability"] == liability

    # the rebuild: once the live announcements are in the log, from the log into an empty database
    live_url, rebuild_url = db_url(DATABASES["tiers"]), db_url(REBUILD_DATABASE)
    unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    eventually(lambda: asyncio.run(one_row(live_url, unpublished)) == (0,), "the live outbox is published", timeout=30)
    asyncio.run(empty_schema(rebuild_url))
    program = tmp_path / "program.json"
    program.write_text(tiers.get("/v1/tiers").text)
    rebuilt = subprocess.run(
        [str(Path(sys.executable).parent / "loyalty"), "rebuild", "tiers", "--database-url", rebuild_url,
         "--program", str(program), "--now", ran["computed_at"]],
        env=system["tiers"].env, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "skipped 0" in rebuilt.stdout and "0 changed since announced" in rebuilt.stdout, rebuilt.stdout

    live, copy = asyncio.run(tiers_state(live_url)), asyncio.run(tiers_state(rebuild_url))
    assert {m: t for m, (t, _, _) in copy["members"].items()} == tier_of
    for part in ("members", "history", "segments", "balances", "run"):
        assert copy[part] == live[part], part
    assert copy["unpublished"] == []


async def one_row(url: str, query: str) -> tuple[Any, ...]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        row = (await conn.execute(text(query))).one()
    await engine.dispose()
    return tuple(row)


def test_the_tiers_docs_name_the_segments_page(system: System) -> None:
    description = httpx.get(f"{system['tiers'].url}/openapi.json").json()["info"]["description"]
    assert "docs/segments.md" in description
