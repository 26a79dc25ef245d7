"""Earning rules through the API: validation, promotions and bonuses on purchases, deletion, batches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from shared.clock import utcnow
from tests.points.builders import available, buy, enroll, now_purchase, purchase
from tests.points.ledger_checks import assert_balanced

COFFEE_X2 = {"rule_id": "coffee-x2", "kind": "multiplier", "factor": "2", "match": {"categories": ["coffee"]}}


@pytest.mark.parametrize(("rule", "field"), [
    ({"rule_id": "r", "kind": "cashback", "points": 1}, "kind"),
    ({**COFFEE_X2, "factor": "0"}, "factor"),
    ({**COFFEE_X2, "factor": "-1"}, "factor"),
    ({**COFFEE_X2, "match": {}}, "match"),
    ({**COFFEE_X2, "valid_from": "2026-12-01T00:00:00Z", "valid_until": "2026-11-01T00:00:00Z"}, "valid_until"),
    ({"rule_id": "b", "kind": "bonus", "points": 10, "trigger": "min_spend"}, "min_spend"),
    ({"rule_id": "b", "kind": "bonus", "points": 0, "trigger": "first_purchase"}, "points"),
    ({**COFFEE_X2, "days_of_week": [8]}, "days_of_week"),
])
async def test_bad_rules_are_422_naming_the_field(client: httpx.AsyncClient, rule: dict[str, object], field: str
                                                  ) -> None:
    answer = await client.post("/v1/earning-rules", json=rule)
    assert answer.status_code == 422, answer.text
    assert answer.json()["type"] == "/problems/validation-error"
    assert any(field in [str(p) for p in err["loc"]] for err in answer.json()["errors"]), answer.json()


async def test_rule_lifecycle(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/earning-rules", json=COFFEE_X2)
    assert created.status_code == 201 and created.json()["factor"] == "2"
    assert (await client.post("/v1/earning-rules", json=COFFEE_X2)).status_code == 200
    assert (await client.post("/v1/earning-rules", json={**COFFEE_X2, "factor": "3"})).status_code == 409
    patched = await client.patch("/v1/earning-rules/coffee-x2", json={"factor": "3", "days_of_week": [6, 7]})
    assert patched.status_code == 200 and patched.json()["factor"] == "3"
    invalid = await client.patch("/v1/earning-rules/coffee-x2", json={"valid_from": "2027-01-01T00:00:00Z",
                                                                      "valid_until": "2026-01-01T00:00:00Z"})
    assert invalid.status_code == 422
    assert [r["rule_id"] for r in (await client.get("/v1/earning-rules")).json()["items"]] == ["coffee-x2"]
    assert (await client.delete("/v1/earning-rules/coffee-x2")).status_code == 204
    assert (await client.get("/v1/earning-rules/coffee-x2")).status_code == 404
    assert (await client.get("/v1/earning-rules")).json()["items"] == []


async def test_promotion_applies_in_its_window_and_deleting_it_keeps_points(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await client.post("/v1/earning-rules", json={**COFFEE_X2, "valid_from": "2026-11-01T00:00:00Z",
                                                 "valid_until": "2026-12-01T00:00:00Z"})
    await enroll(client, "p-1")
    lines = [{"sku": "latte", "category": "coffee", "quantity": 2, "unit_price": "4.50"},
             {"sku": "bun", "category": "bakery", "quantity": 1, "unit_price": "3.00"}]
    inside = (await client.post("/v1/purchases", json=purchase("pp-1", "p-1", "12.00", lines=lines))).json()
    assert inside["points_earned"] == 21
    assert inside["breakdown"] == [{"rule_id": "base", "points": 12}, {"rule_id": "coffee-x2", "points": 9}]
    outside = await client.post("/v1/purchases", json=purchase("pp-2", "p-1", "12.00", lines=lines,
                                                               occurred_at="2026-10-31T10:00:00Z"))
    assert outside.json()["points_earned"] == 12
    await client.delete("/v1/earning-rules/coffee-x2")
    assert await available(client, "p-1") == 33
    ledger = (await client.get("/v1/members/p-1/ledger")).json()["items"]
    assert ledger[-1]["rule_ids"] == ["coffee-x2"]
    await assert_balanced(app, "p-1")


async def test_enrollment_first_purchase_and_birthday_bonuses(
    client: httpx.AsyncClient, app: FastAPI, travel: Callable[[timedelta], None]
) -> None:
    for rule in ({"rule_id": "signup", "kind": "bonus", "points": 100, "trigger": "enrollment"},
                 {"rule_id": "welcome", "kind": "bonus", "points": 50, "trigger": "first_purchase"},
                 {"rule_id": "bday", "kind": "bonus", "points": 30, "trigger": "birthday_month"}):
        assert (await client.post("/v1/earning-rules", json=rule)).status_code == 201
    await enroll(client, "b-1", birth_date="1990-11-03")
    assert await available(client, "b-1") == 100
    first = (await client.post("/v1/purchases", json=purchase("bp-1", "b-1", "10.00"))).json()
    assert first["breakdown"] == [{"rule_id": "base", "points": 10}, {"rule_id": "bday", "points": 30},
                                  {"rule_id": "welcome", "points": 50}]
    again = (await client.post("/v1/purchases", json=purchase("bp-2", "b-1", "10.00"))).json()
    assert again["points_earned"] == 10, "birthday bonus once a year, welcome bonus once"
    travel(datetime(2027, 11, 21, tzinfo=UTC) - utcnow())
    next_year = await client.post("/v1/purchases", json=purchase("bp-3", "b-1", "10.00",
                                                                 occurred_at="2027-11-20T10:00:00Z"))
    assert next_year.json()["points_earned"] == 40
    await assert_balanced(app, "b-1")


async def test_referrer_earns_when_the_referred_member_first_buys(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.post("/v1/earning-rules", json={"rule_id": "refer", "kind": "bonus", "points": 200,
                                                 "trigger": "referral"})
    await enroll(client, "ref-a")
    await enroll(client, "ref-b", referred_by="ref-a")
    await buy(client, "rb-1", "ref-b", "10.00")
    await buy(client, "rb-2", "ref-b", "10.00")
    assert await available(client, "ref-a") == 200
    assert await available(client, "ref-b") == 20
    await assert_balanced(app, "ref-a")


async def test_min_spend_bonus(client: httpx.AsyncClient) -> None:
    await client.post("/v1/earning-rules", json={"rule_id": "big", "kind": "bonus", "points": 25,
                                                 "trigger": "min_spend", "min_spend": "50.00"})
    await enroll(client, "m-1")
    assert (await buy(client, "mp-1", "m-1", "49.99"))["points_earned"] == 49
    assert (await buy(client, "mp-2", "m-1", "50.00"))["points_earned"] == 75


async def test_batch_answers_each_purchase_alone(client: httpx.AsyncClient, app: FastAPI) -> None:
    await enroll(client, "k-1")
    await buy(client, "kp-0", "k-1", "5.00")
    first = now_purchase("kp-1", "k-1", "10.00")
    items = [
        first,
        {"purchase_id": "kp-2", "member_id": "k-1", "total": "oops"},
        now_purchase("kp-3", "nobody", "10.00"),
        first,
        {**first, "total": "11.00"},
        "not an object",
    ]
    answer = await client.post("/v1/purchases/batch", json={"purchases": items})
    assert answer.status_code == 422  # a list item that is not an object is a malformed batch
    answer = await client.post("/v1/purchases/batch", json={"purchases": items[:-1]})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [201, 422, 404, 200, 409]
    assert results[1]["body"]["type"] == "/problems/validation-error"
    assert results[2]["body"]["type"] == "/problems/member-not-found"
    assert await available(client, "k-1") == 15
    too_many = await client.post("/v1/purchases/batch", json={"purchases": [items[0]] * 1001})
    assert too_many.status_code == 422
    await assert_balanced(app, "k-1")


async def test_each_purchase_earns_under_the_rules_as_they_are_now(client: httpx.AsyncClient) -> None:
    """Parsed rules are kept between purchases; every change (create, patch, delete) must reach the next one."""
    await enroll(client, "C-1")
    coffee: list[dict[str, object]] = [{"sku": "latte", "category": "coffee", "quantity": 1, "unit_price": "10.00"}]

    async def earned(purchase_id: str) -> int:
        answer = await client.post("/v1/purchases", json=now_purchase(purchase_id, "C-1", lines=coffee))
        assert answer.status_code == 201, answer.text
        return int(answer.json()["points_earned"])

    plain = await earned("p-0")
    assert (await client.post("/v1/earning-rules", json=COFFEE_X2)).status_code == 201
    assert await earned("p-1") == 2 * plain
    assert (await client.patch("/v1/earning-rules/coffee-x2", json={"factor": "3"})).status_code == 200
    assert await earned("p-2") == 3 * plain
    assert (await client.delete("/v1/earning-rules/coffee-x2")).status_code == 204
    assert await earned("p-3") == plain
