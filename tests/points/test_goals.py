"""Goals: periods in the program's zone across DST, progress net of refunds, a quarterly rebate settled once
after its return window (also when the job dies half-way), and a stamp card that fills again and again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.points import domain
from services.points.models import GoalPeriod, GoalSettlement
from services.points.service import goals
from shared.clock import utcnow
from tests.points.builders import available, enroll, program, purchase
from tests.points.ledger_checks import assert_balanced
from tests.support import outbox_events

NEW_YORK = ZoneInfo("America/New_York")
REBATE = {"rule_id": "dealer-rebate", "kind": "goal", "metric": "spend", "target": "1000", "period": "quarter",
          "reward": {"rebate_pct": "2.5"}, "valid_from": "2026-10-01T00:00:00-04:00"}
CARD = {"rule_id": "coffee-card", "kind": "goal", "metric": "purchases", "target": "10", "period": "rolling",
        "match": {"categories": ["coffee"]}, "reward": {"points": 50}}


# --- pure parts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("moment", "period", "key", "start", "end"), [
    # March 2027 in New York: EST (-05:00) at its start, EDT (-04:00) at its end.
    (datetime(2027, 3, 20, 12, tzinfo=NEW_YORK), "month", "2027-03", "2027-03-01T05:00:00+00:00",
     "2027-04-01T04:00:00+00:00"),
    (datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK), "month", "2026-11", "2026-11-01T04:00:00+00:00",
     "2026-12-01T05:00:00+00:00"),
    (datetime(2026, 12, 31, 23, 59, tzinfo=NEW_YORK), "quarter", "2026-Q4", "2026-10-01T04:00:00+00:00",
     "2027-01-01T05:00:00+00:00"),
    (datetime(2027, 2, 1, tzinfo=NEW_YORK), "quarter", "2027-Q1", "2027-01-01T05:00:00+00:00",
     "2027-04-01T04:00:00+00:00"),
    (datetime(2027, 6, 30, tzinfo=ZoneInfo("Pacific/Kiritimati")), "year", "2027", "2026-12-31T10:00:00+00:00",
     "2027-12-31T10:00:00+00:00"),
])
def test_calendar_periods_start_and_end_at_local_midnight(moment: datetime, period: str, key: str, start: str,
                                                          end: str) -> None:
    found_key, found_start, found_end = domain.goal_period(moment, period)
    assert (found_key, found_start.astimezone(UTC).isoformat(), found_end.astimezone(UTC).isoformat()) == (
        key, start, end)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(NEW_YORK)),
       st.sampled_from(["month", "quarter", "year"]))
def test_periods_follow_each_other_without_gap(moment: datetime, period: str) -> None:
    key, start, end = domain.goal_period(moment, period)
    assert start <= moment < end
    next_key, next_start, _ = domain.goal_period(end, period)
    assert next_start == end and next_key != key


def test_closed_periods_wait_for_the_return_window() -> None:
    goal = domain.GoalRule("g", "spend", Decimal(100), "month")
    first = datetime(2026, 10, 5, tzinfo=UTC)
    keys = [key for key, _, _ in domain.closed_periods(goal, first, datetime(2026, 12, 14, 4, 59, tzinfo=UTC),
                                                       14, NEW_YORK)]
    assert keys == ["2026-10"]  # November ends 05:00Z on Dec 1 and waits until Dec 15, 05:00Z
    keys = [key for key, _, _ in domain.closed_periods(goal, first, datetime(2026, 12, 15, 5, tzinfo=UTC), 14,
                                                       NEW_YORK)]
    assert keys == ["2026-10", "2026-11"]


def facts(total: str, *, category: str | None = None, at: str = "2026-11-02T10:00:00Z", refunded: str = "0",
          extra: str | None = None) -> domain.GoalPurchase:
    lines = [domain.Line(Decimal(total), category, "sku")]
    if extra:
        lines.append(domain.Line(Decimal(extra), "other", "sku-2"))
    return domain.GoalPurchase(domain.PurchaseFacts(lines=tuple(lines), occurred_at=datetime.fromisoformat(at)),
                               refunded=Decimal(refunded))


def test_progress_counts_matching_lines_net_of_refunds_inside_the_window() -> None:
    spend = domain.GoalRule("g", "spend", Decimal(100), "month", categories=frozenset({"coffee"}),
                            window=domain.Window(valid_from=datetime(2026, 11, 1, tzinfo=UTC)))
    purchases = [facts("10", category="coffee"), facts("30", category="coffee", extra="10", refunded="20"),
                 facts("50", category="tea"), facts("40", category="coffee", at="2026-10-31T23:00:00Z"),
                 facts("8", category="coffee", refunded="8")]
    # 10, then 30 of a 40 purchase refunded by half: 15; tea does not count; October is before the window;
    # refunded in full: nothing.
    assert domain.goal_progress(spend, purchases) == Decimal(25)
    visits = domain.GoalRule("g", "purchases", Decimal(10), "rolling", categories=frozenset({"coffee"}))
    assert domain.goal_progress(visits, purchases) == 3  # the three not refunded in full with a coffee line


def test_rewards_and_cards() -> None:
    rebate = domain.GoalRule("g", "spend", Decimal(1000), "quarter", rebate_pct=Decimal("2.5"))
    assert domain.goal_points(rebate, Decimal("1100.99"), Decimal("0.01")) == 2752  # 27.52475 worth of points
    assert domain.goal_points(domain.GoalRule("g", "spend", Decimal(1), "month", reward_points=70), Decimal(5),
                              Decimal("0.01")) == 70
    assert domain.goal_points(domain.GoalRule("g", "spend", Decimal(1), "month", reward_id="cup"), Decimal(5),
                              Decimal("0.01")) == 0
    assert [domain.cards_filled(Decimal(n), Decimal(10)) for n in (0, 9, 10, 19, 20, -1)] == [0, 0, 1, 1, 2, 0]


# --- through the API ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "field"), [
    ({"reward": {"points": 10, "reward_id": "cup"}}, "reward"),
    ({"reward": {}}, "reward"),
    ({"metric": "purchases", "target": "2.5"}, "whole number"),
    ({"target": "0"}, "more than 0"),
    ({"period": "week"}, "period"),
    ({"metric": "purchases", "target": "3", "period": "rolling"}, "rolling purchases goal"),
    ({"reward": {"rebate_pct": "0"}}, "rebate_pct"),
    ({"target": "1_000"}, "target"),
])
async def test_a_bad_goal_is_422_and_nothing_is_stored(client: httpx.AsyncClient, change: dict[str, Any],
                                                       field: str) -> None:
    answer = await client.post("/v1/earning-rules", json={**REBATE, **change})
    assert answer.status_code == 422, answer.text
    assert field in answer.text
    assert (await client.get("/v1/earning-rules/dealer-rebate")).status_code == 404


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await client.request("PUT" if path == "/v1/program" else "POST", path, json=body)
    assert answer.status_code in (200, 201), answer.text
    result: dict[str, Any] = answer.json()
    return result


async def count(app: FastAPI, model: type[Any]) -> int:
    async with app.state.runtime.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def travel_to(travel: Callable[[timedelta], None], moment: datetime) -> None:
    travel(moment - utcnow())


async def test_a_quarterly_rebate_is_settled_once_after_the_return_window(
        client: httpx.AsyncClient, app: FastAPI, travel: Callable[[timedelta], None]) -> None:
    await post(client, "/v1/program", program(time_zone="America/New_York", pending_days=14))
    assert (await post(client, "/v1/earning-rules", REBATE))["kind"] == "goal"
    for member_id in ("D-1", "D-2", "D-3"):
        await enroll(client, member_id)
    for n, (member_id, total, at) in enumerate([
        ("D-1", "600.00", "2026-10-01T00:30:00-04:00"), ("D-1", "500.00", "2026-11-20T10:00:00-05:00"),
        ("D-2", "400.00", "2026-10-10T10:00:00-04:00"), ("D-2", "800.00", "2026-12-06T10:00:00-05:00"),
        ("D-3", "999.99", "2026-11-01T10:00:00-05:00"),
        ("D-3", "100.00", "2026-09-30T23:30:00-04:00"),  # October in UTC, September in New York: not counted
    ]):
        await post(client, "/v1/purchases", purchase(f"o-{n}", member_id, total, occurred_at=at))
    # The dealer who ordered to reach the target returns the order inside the return window.
    await post(client, "/v1/purchases/o-3/refunds", {"refund_id": "rf-1", "amount": "800.00",
                                                    "occurred_at": utcnow().isoformat()})
    shown = (await client.get("/v1/members/D-1/goals")).json()["goals"]
    assert shown == [{"rule_id": "dealer-rebate", "metric": "spend", "period": "quarter", "period_key": "2026-Q4",
                      "progress": "1100.00", "target": "1000", "period_end": "2027-01-01T05:00:00Z",
                      "reward": {"rebate_pct": "2.5"}, "settled": []}]
    assert (await client.get("/v1/members/D-3/goals")).json()["goals"][0]["progress"] == "999.99"

    db = app.state.runtime.db
    assert await goals.settle_goals(db) == 0  # the quarter has not ended
    travel_to(travel, datetime(2027, 1, 15, 4, 59, tzinfo=UTC))
    assert await goals.settle_goals(db) == 0  # it ended, its return window has not
    before = await available(client, "D-1")
    travel_to(travel, datetime(2027, 1, 15, 5, 1, tzinfo=UTC))
    assert await goals.settle_goals(db) == 1
    assert await goals.settle_goals(db) == 0
    assert await available(client, "D-1") == before + 2750  # 2.5% of 1,100.00 at 0.01 a point
    reached = await outbox_events(app, "goal.reached")
    assert [(e["subject"], e["data"]["period"], e["data"]["points"], e["data"]["progress"]) for e in reached] == [
        ("D-1", "2026-Q4", 2750, "1100.00")]
    assert reached[0]["data"]["goal_id"] == goals.goal_id("dealer-rebate", "D-1", "2026-Q4")
    earned = [e for e in await outbox_events(app, "points.earned") if e["data"]["rule_ids"] == ["dealer-rebate"]]
    assert [(e["subject"], e["data"]["points"], e["data"]["kind"]) for e in earned] == [("D-1", 2750, "bonus")]
    assert await count(app, GoalPeriod) == 1
    assert (await client.get("/v1/members/D-1/goals")).json()["goals"][0]["period_key"] == "2027-Q1"
    for member_id in ("D-1", "D-2", "D-3"):
        await assert_balanced(app, member_id)


async def test_a_settlement_that_dies_half_way_settles_the_rest_once(
        client: httpx.AsyncClient, app: FastAPI, travel: Callable[[timedelta], None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    await post(client, "/v1/earning-rules", {**REBATE, "reward": {"points": 100}})
    members = [f"D-{n}" for n in range(5)]
    for n, member_id in enumerate(members):
        await enroll(client, member_id)
        await post(client, "/v1/purchases", purchase(f"o-{n}", member_id, "1000.00",
                                                     occurred_at="2026-11-02T10:00:00Z"))
    travel_to(travel, datetime(2027, 1, 2, tzinfo=UTC))
    real = goals._settle
    calls = 0

    async def dies_on_the_third(*args: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("killed")
        return await real(*args)

    monkeypatch.setattr(goals, "_settle", dies_on_the_third)
    with pytest.raises(RuntimeError):
        await goals.settle_goals(app.state.runtime.db)
    assert await count(app, GoalSettlement) == 2 and await count(app, GoalPeriod) == 0
    monkeypatch.setattr(goals, "_settle", real)
    assert await goals.settle_goals(app.state.runtime.db) == 3
    assert await goals.settle_goals(app.state.runtime.db) == 0
    for member_id in members:
        assert await available(client, member_id) == 1100
        await assert_balanced(app, member_id)
    assert len(await outbox_events(app, "goal.reached")) == 5


async def test_a_stamp_card_fills_every_tenth_coffee_and_a_refund_takes_one_off(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    await post(client, "/v1/earning-rules", {**CARD, "valid_from": "2026-11-01T00:00:00Z"})
    await enroll(client, "C-1")

    async def coffee(n: int, category: str = "coffee") -> None:
        await post(client, "/v1/purchases", purchase(
            f"c-{n}", "C-1", "3.00", occurred_at=(utcnow() - timedelta(hours=30 - n)).isoformat(),
            lines=[{"sku": "latte", "category": category, "quantity": 1, "unit_price": "3.00"}]))

    for n in range(9):
        await coffee(n)
    await coffee(9, "tea")
    db = app.state.runtime.db
    assert await goals.settle_goals(db) == 0
    card = (await client.get("/v1/members/C-1/goals")).json()["goals"][0]
    assert (card["progress"], card["period_key"], card["period_end"]) == ("9", "rolling-1", None)
    await coffee(10)
    assert await goals.settle_goals(db) == 1
    assert await goals.settle_goals(db) == 0
    card = (await client.get("/v1/members/C-1/goals")).json()["goals"][0]
    assert (card["progress"], card["period_key"], card["settled"]) == ("0", "rolling-2", ["rolling-1"])
    for n in range(11, 21):
        await coffee(n)
    await post(client, "/v1/purchases/c-11/refunds", {"refund_id": "rf-1", "amount": "3.00",
                                                     "occurred_at": utcnow().isoformat()})
    assert await goals.settle_goals(db) == 0  # nine count: the refunded one is off the second card
    await coffee(21)
    assert await goals.settle_goals(db) == 1
    reached = await outbox_events(app, "goal.reached")
    assert [e["data"]["period"] for e in reached] == ["rolling-1", "rolling-2"]
    await assert_balanced(app, "C-1")
