"""Limits of earning rules on PostgreSQL: a budget that many tills at once never overspend, a per-member limit
per period in the program's time zone, refunds that give budget back, quotes that show what is left without
counting it, and bodies refused."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.points import jobs
from tests.points.builders import enroll, program, purchase
from tests.points.ledger_checks import assert_balanced

BONUS = {"rule_id": "ten-back", "kind": "bonus", "points": 10, "trigger": "min_spend", "min_spend": "1.00"}


async def create(client: httpx.AsyncClient, rule: dict[str, Any]) -> None:
    answer = await client.post("/v1/earning-rules", json=rule)
    assert answer.status_code == 201, answer.text


async def rule(client: httpx.AsyncClient, rule_id: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/earning-rules/{rule_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def given_by(answer: dict[str, Any], rule_id: str) -> int:
    return sum(item["points"] for item in answer["breakdown"] if item["rule_id"] == rule_id)


async def bought(client: httpx.AsyncClient, purchase_id: str, member_id: str, total: str = "10.00",
                 **fields: Any) -> dict[str, Any]:
    answer = await client.post("/v1/purchases", json=purchase(purchase_id, member_id, total, **fields))
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.mark.parametrize(("limits", "field"), [
    ({}, "limits"),
    ({"per_member_period": "month"}, "limits"),
    ({"budget_points": 0}, "budget_points"),
    ({"budget_points": "1_000"}, "budget_points"),
    ({"budget_points": 1.5}, "budget_points"),
    ({"per_member_points": 10, "per_member_period": "fortnight"}, "per_member_period"),
    ({"per_member_points": -1}, "per_member_points"),
    ({"budget_points": 10, "total": 5}, "total"),
    ({"budget_points": 10, "trigger": "enrollment"}, "limits"),
    ({"budget_points": 10, "trigger": "referral"}, "limits"),
])
async def test_bad_limits_are_422_naming_the_field(client: httpx.AsyncClient, limits: dict[str, Any],
                                                   field: str) -> None:
    limits = dict(limits)
    extra = {"trigger": limits.pop("trigger")} if "trigger" in limits else {}
    answer = await client.post("/v1/earning-rules", json={**BONUS, **extra, "limits": limits})
    assert answer.status_code == 422, answer.text
    assert any(field in [str(p) for p in err["loc"]] for err in answer.json()["errors"]), answer.json()
    assert (await client.get("/v1/earning-rules/ten-back")).status_code == 404


async def test_a_budget_is_never_overspent_by_tills_at_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    await create(client, {**BONUS, "limits": {"budget_points": 95}})
    members = [f"C-{i}" for i in range(40)]
    for member_id in members:
        await enroll(client, member_id)
    answers = await asyncio.gather(*(client.post("/v1/purchases", json=purchase(f"p-{m}", m)) for m in members))
    assert all(answer.status_code == 201 for answer in answers), [a.text for a in answers if a.status_code != 201]
    bonuses = sorted(given_by(answer.json(), "ten-back") for answer in answers)
    assert sum(bonuses) == 95 and bonuses.count(10) == 9 and bonuses.count(5) == 1, bonuses
    assert all(answer.json()["points_earned"] == 10 + given_by(answer.json(), "ten-back") for answer in answers)
    shown = await rule(client, "ten-back")
    assert (shown["budget_used"], shown["exhausted"]) == (95, True)
    listed = (await client.get("/v1/earning-rules")).json()["items"]
    assert [(r["rule_id"], r["budget_used"], r["exhausted"]) for r in listed] == [("ten-back", 95, True)]
    for member_id in members:
        await assert_balanced(app, member_id)
    await jobs.expire_points(app.state.runtime)  # the minute job sets /metrics' figures from the database
    metrics = (await client.get("/metrics")).text
    assert 'loyalty_rule_exhausted{rule_id="ten-back",service="points"} 1.0' in metrics, metrics[-2000:]
    assert 'loyalty_rule_budget_used_points{rule_id="ten-back",service="points"} 95.0' in metrics
    # Raising the budget opens the rule again for what was added.
    assert (await client.patch("/v1/earning-rules/ten-back", json={"limits": {"budget_points": 100}})).json()[
        "exhausted"] is False
    assert given_by(await bought(client, "more", "C-1"), "ten-back") == 5


async def test_a_per_member_limit_counts_each_calendar_month_in_the_programs_zone(client: httpx.AsyncClient,
                                                                                 app: FastAPI) -> None:
    assert (await client.put("/v1/program", json=program(time_zone="America/New_York"))).status_code == 200
    await create(client, {"rule_id": "coffee-x2", "kind": "multiplier", "factor": "2",
                          "match": {"categories": ["coffee"]},
                          "limits": {"per_member_points": 15, "per_member_period": "month"}})
    await enroll(client, "C-1")
    await enroll(client, "C-2")
    lines = [{"sku": "latte", "category": "coffee", "quantity": 2, "unit_price": "5.00"}]

    async def extra(purchase_id: str, member_id: str, moment: str) -> int:
        return given_by(await bought(client, purchase_id, member_id, lines=lines, occurred_at=moment), "coffee-x2")

    assert await extra("n-1", "C-1", "2026-11-10T15:00:00Z") == 10
    assert await extra("n-2", "C-1", "2026-11-20T15:00:00Z") == 5
    assert await extra("n-3", "C-1", "2026-11-25T15:00:00Z") == 0
    assert await extra("n-4", "C-2", "2026-11-25T15:00:00Z") == 10  # another member's own limit
    # 02:00 on 1 December in UTC is still November in New York: nothing left.
    assert await extra("n-5", "C-1", "2026-12-01T02:00:00Z") == 0
    assert await extra("d-1", "C-1", "2026-12-01T06:00:00Z") == 10
    assert (await rule(client, "coffee-x2"))["budget_used"] == 35  # counted, though it has no budget to exhaust
    await assert_balanced(app, "C-1")


async def test_refunds_give_the_budget_back_in_proportion(client: httpx.AsyncClient, app: FastAPI) -> None:
    await create(client, {**BONUS, "limits": {"budget_points": 20, "per_member_points": 10}})
    for member_id in ("C-1", "C-2", "C-3"):
        await enroll(client, member_id)
    assert given_by(await bought(client, "p-1", "C-1"), "ten-back") == 10
    assert given_by(await bought(client, "p-2", "C-2"), "ten-back") == 10
    assert (await rule(client, "ten-back"))["exhausted"] is True
    half = await client.post("/v1/purchases/p-1/refunds", json={
        "refund_id": "r-1", "amount": "5.00", "occurred_at": "2026-11-21T10:00:00Z"})
    assert half.status_code == 201, half.text
    assert (await rule(client, "ten-back"))["budget_used"] == 15
    assert given_by(await bought(client, "p-3", "C-3"), "ten-back") == 5
    rest = await client.post("/v1/purchases/p-1/refunds", json={
        "refund_id": "r-2", "amount": "5.00", "occurred_at": "2026-11-21T11:00:00Z"})
    assert rest.status_code == 201, rest.text
    assert (await rule(client, "ten-back"))["budget_used"] == 15  # 5 + 10 of the others: p-1 gave back all
    # C-1's own limit is free again too: the refunded purchase no longer counts against it.
    assert given_by(await bought(client, "p-4", "C-1"), "ten-back") == 5
    assert (await rule(client, "ten-back"))["budget_used"] == 20
    for member_id in ("C-1", "C-2", "C-3"):
        await assert_balanced(app, member_id)


async def test_a_quote_shows_what_is_left_and_counts_nothing(client: httpx.AsyncClient) -> None:
    await create(client, {**BONUS, "limits": {"budget_points": 15}})
    await enroll(client, "C-1")
    assert given_by(await bought(client, "p-1", "C-1"), "ten-back") == 10
    body = {k: v for k, v in purchase("p-2", "C-1").items() if k != "purchase_id"}
    for _ in range(3):
        quote = await client.post("/v1/quotes", json=body)
        assert quote.status_code == 200, quote.text
        assert given_by(quote.json(), "ten-back") == 5 and quote.json()["points_earned"] == 15
    assert (await rule(client, "ten-back"))["budget_used"] == 10
    assert (await bought(client, "p-2", "C-1"))["points_earned"] == 15
