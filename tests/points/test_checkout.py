"""The checkout on PostgreSQL: quotes, holds (taken, captured whole or in part, voided, expired, raced),
purchases paid partly with points and their refunds, with the ledger invariant checked after each story."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from tests.points.builders import buy, enroll, now_purchase, program
from tests.points.ledger_checks import assert_balanced
from tests.support import outbox_events

GROCERIES = [{"sku": "A-1", "category": "grocery", "quantity": 2, "unit_price": "10.00"}]


async def member_with(client: httpx.AsyncClient, member_id: str, points: int) -> None:
    await enroll(client, member_id)
    answer = await client.post(f"/v1/members/{member_id}/adjustments",
                               json={"adjustment_id": f"seed-{member_id}", "points": points, "reason": "seed"})
    assert answer.status_code == 201, answer.text


async def hold(client: httpx.AsyncClient, hold_id: str, member_id: str, points: int, **fields: Any) -> httpx.Response:
    return await client.post("/v1/holds", json={"hold_id": hold_id, "member_id": member_id, "points": points,
                                                **fields})


async def balance(client: httpx.AsyncClient, member_id: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/members/{member_id}/balance")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_a_hold_takes_points_out_of_available_and_a_capture_spends_them(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    await member_with(client, "C-1", 300)
    taken = await hold(client, "h-1", "C-1", 120, order_total="20.00", currency="USD")
    assert taken.status_code == 201, taken.text
    body = taken.json()
    assert body["status"] == "held" and body["points"] == 120 and body["value"] == "1.20"
    assert body["balance"] == {"available": 180, "pending": 0, "held": 120}
    shown = await balance(client, "C-1")
    assert (shown["available"], shown["held"]) == (180, 120)
    assert (await hold(client, "h-1", "C-1", 120, order_total="20.00", currency="USD")).status_code == 200
    assert (await hold(client, "h-1", "C-1", 121)).status_code == 409  # same id, other body

    captured = await client.post("/v1/holds/h-1/capture", json={"points": 100})
    assert captured.status_code == 200, captured.text
    assert captured.json()["status"] == "captured" and captured.json()["points"] == 100
    assert captured.json()["value"] == "1.00" and captured.json()["balance"] == {"available": 200, "pending": 0,
                                                                                  "held": 0}
    assert (await client.post("/v1/holds/h-1/capture", json={"points": 100})).json() == captured.json()
    assert (await client.post("/v1/holds/h-1/capture", json={"points": 90})).status_code == 409
    assert (await client.post("/v1/holds/h-1/void")).json()["type"] == "/problems/hold-not-active"

    ledger = (await client.get("/v1/members/C-1/ledger")).json()["items"]
    assert ledger[0]["kind"] == "spend" and ledger[0]["points"] == -100 and ledger[0]["hold_id"] == "h-1"
    assert ledger[0]["balance_after"] == 200
    spent = [e["data"] for e in await outbox_events(app, "points.spent")]
    assert spent == [{"member_id": "C-1", "points": 100, "balance": {"available": 180, "pending": 0, "held": 20},
                      "redemption_id": None, "hold_id": "h-1"}]
    released = [e["data"] for e in await outbox_events(app, "points.released")]
    assert [(r["points"], r["reason"], r["balance"]["available"]) for r in released] == [(20, "captured", 200)]
    assert [e["data"]["points"] for e in await outbox_events(app, "points.held")] == [120]
    await assert_balanced(app, "C-1")


async def test_holds_are_refused_clearly_and_leave_nothing_behind(client: httpx.AsyncClient, app: FastAPI) -> None:
    await member_with(client, "C-1", 100)
    assert (await client.put("/v1/program", json=program(redemption={"min_points": 10, "max_share": "0.5"}))
            ).status_code == 200
    cases = [
        (await hold(client, "h-1", "C-1", 101), 422, "insufficient-points"),
        (await hold(client, "h-2", "C-1", 5), 422, "validation-error"),  # below min_points
        (await hold(client, "h-3", "C-1", 60, order_total="1.00"), 422, "validation-error"),  # 0.60 > half of 1.00
        (await hold(client, "h-4", "C-1", 20, currency="EUR"), 422, "currency-mismatch"),
        (await hold(client, "h-5", "nobody", 20), 404, "member-not-found"),
        (await hold(client, "h-6", "C-1", 0), 422, "validation-error"),
        (await hold(client, "h-7", "C-1", 20, order_total="1.001"), 422, "validation-error"),
        (await client.post("/v1/holds/none/capture"), 404, "not-found"),
    ]
    for answer, status, slug in cases:
        assert answer.status_code == status and answer.json()["type"] == f"/problems/{slug}", answer.text
    assert (await balance(client, "C-1"))["available"] == 100
    assert await outbox_events(app, "points.held") == []
    assert (await hold(client, "h-1", "C-1", 50, order_total="1.00")).status_code == 201  # the id is free again
    await assert_balanced(app, "C-1")


async def test_a_void_gives_every_part_back_to_its_own_lot(client: httpx.AsyncClient, app: FastAPI,
                                                          travel: Callable[[timedelta], None]) -> None:
    await enroll(client, "C-1")
    await buy(client, "p-1", "C-1", "30.00")  # a lot of 30, expiring first
    travel(timedelta(days=10))
    await buy(client, "p-2", "C-1", "50.00")  # a lot of 50, ten days later
    assert (await hold(client, "h-1", "C-1", 40)).status_code == 201
    voided = await client.post("/v1/holds/h-1/void")
    assert voided.status_code == 200 and voided.json()["status"] == "voided"
    assert voided.json()["balance"] == {"available": 80, "pending": 0, "held": 0}
    assert (await client.post("/v1/holds/h-1/void")).json() == voided.json()
    assert (await client.post("/v1/holds/h-1/capture")).json()["type"] == "/problems/hold-not-active"
    travel(timedelta(days=356))  # p-1's lot expires (365 days), p-2's not yet: each kept its own date
    assert (await balance(client, "C-1"))["available"] == 50
    await assert_balanced(app, "C-1")


async def test_a_capture_spends_the_soonest_expiring_points_and_gives_the_rest_back(
        client: httpx.AsyncClient, app: FastAPI, travel: Callable[[timedelta], None]) -> None:
    await enroll(client, "C-1")
    await buy(client, "p-1", "C-1", "30.00")
    travel(timedelta(days=10))
    await buy(client, "p-2", "C-1", "50.00")
    assert (await hold(client, "h-1", "C-1", 60)).status_code == 201  # 30 of p-1, 30 of p-2
    assert (await client.post("/v1/holds/h-1/capture", json={"points": 40})).status_code == 200
    travel(timedelta(days=356))  # p-1's lot is gone (spent), so nothing expires of it; p-2's 40 still live
    assert (await balance(client, "C-1"))["available"] == 40
    travel(timedelta(days=10))
    assert (await balance(client, "C-1"))["available"] == 0
    await assert_balanced(app, "C-1")


async def test_a_hold_goes_back_by_itself_when_its_time_is_up(client: httpx.AsyncClient, app: FastAPI,
                                                             travel: Callable[[timedelta], None]) -> None:
    await member_with(client, "C-1", 100)
    assert (await hold(client, "h-1", "C-1", 70)).status_code == 201
    assert (await hold(client, "h-2", "C-1", 40)).status_code == 422  # 30 left
    travel(timedelta(minutes=16))  # hold_minutes: 15
    assert (await balance(client, "C-1"))["available"] == 100
    shown = await client.get("/v1/holds/h-1")
    assert shown.json()["status"] == "expired" and shown.json()["settled_at"] is not None
    assert (await client.post("/v1/holds/h-1/capture")).json()["type"] == "/problems/hold-expired"
    assert (await client.post("/v1/holds/h-1/void")).json()["type"] == "/problems/hold-expired"
    released = [e["data"] for e in await outbox_events(app, "points.released")]
    assert [(r["hold_id"], r["reason"], r["points"]) for r in released] == [("h-1", "expired", 70)]
    await assert_balanced(app, "C-1")


async def test_the_expiry_job_gives_back_holds_of_members_nobody_reads(
        client: httpx.AsyncClient, app: FastAPI, travel: Callable[[timedelta], None]) -> None:
    from services.points.jobs import settle_due_members

    await member_with(client, "C-1", 100)
    assert (await hold(client, "h-1", "C-1", 70)).status_code == 201
    travel(timedelta(minutes=16))
    assert await settle_due_members(app.state.runtime.db) == 1
    assert await settle_due_members(app.state.runtime.db) == 0  # safe to run twice
    assert len(await outbox_events(app, "points.released")) == 1
    await assert_balanced(app, "C-1")


async def test_fifty_concurrent_holds_never_take_more_than_the_balance(client: httpx.AsyncClient,
                                                                      app: FastAPI) -> None:
    await member_with(client, "C-1", 1000)
    answers = await asyncio.gather(*(hold(client, f"h-{i}", "C-1", 70) for i in range(50)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(201) == 14 and statuses.count(422) == 36, statuses  # 14 x 70 = 980 <= 1000
    shown = await balance(client, "C-1")
    assert (shown["available"], shown["held"]) == (20, 980)
    await assert_balanced(app, "C-1")


async def test_capture_and_void_raced_end_the_hold_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    await member_with(client, "C-1", 500)
    for i in range(10):
        assert (await hold(client, f"h-{i}", "C-1", 50)).status_code == 201
    answers = await asyncio.gather(*(call for i in range(10) for call in (
        client.post(f"/v1/holds/h-{i}/capture"), client.post(f"/v1/holds/h-{i}/void"),
        client.post(f"/v1/holds/h-{i}/capture"))))
    for i in range(10):
        capture_a, void, capture_b = answers[3 * i: 3 * i + 3]
        if void.status_code == 200:  # voided first: both captures refused
            assert capture_a.status_code == capture_b.status_code == 409
        else:  # captured first: the other capture answers the same, the void is refused
            assert void.json()["type"] == "/problems/hold-not-active"
            assert capture_a.json() == capture_b.json() and capture_a.status_code == 200
    ledger = (await client.get("/v1/members/C-1/ledger?limit=100")).json()["items"]
    spends = [entry for entry in ledger if entry["kind"] == "spend"]
    assert len({entry["hold_id"] for entry in spends}) == len(spends)  # at most one spend per hold
    shown = await balance(client, "C-1")
    assert shown["held"] == 0 and shown["available"] == 500 - 50 * len(spends)
    await assert_balanced(app, "C-1")


async def test_a_purchase_paid_with_points_earns_on_the_money_part_and_refunds_the_same_share(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    await member_with(client, "C-1", 1000)
    basket = now_purchase("p-1", "C-1", "20.00", lines=GROCERIES)
    quote = await client.post("/v1/quotes", json={k: v for k, v in basket.items() if k != "purchase_id"})
    assert quote.status_code == 200, quote.text
    assert quote.json()["points_earned"] == 20 and quote.json()["redeemable"] == {"points": 1000, "value": "10.00"}
    assert (await hold(client, "h-1", "C-1", 500, order_total="20.00")).status_code == 201  # 5.00 of 20.00

    paid = {**basket, "points_paid": {"hold_id": "h-1"}}
    quoted = await client.post("/v1/quotes", json={k: v for k, v in paid.items() if k != "purchase_id"})
    answer = await client.post("/v1/purchases", json=paid)
    assert answer.status_code == 201, answer.text
    assert answer.json()["points_earned"] == 15 == quoted.json()["points_earned"]  # on the 15.00 paid in money
    assert answer.json()["breakdown"] == quoted.json()["breakdown"]
    captured = (await client.get("/v1/holds/h-1")).json()
    assert captured["status"] == "captured" and captured["purchase_id"] == "p-1" and captured["points"] == 500
    assert (await client.post("/v1/holds/h-1/capture", json={"purchase_id": "p-1"})).status_code == 200
    assert (await client.post("/v1/purchases", json=paid)).status_code == 200  # the retry replays
    other = await client.post("/v1/purchases", json={**paid, "purchase_id": "p-2"})
    assert other.json()["type"] == "/problems/hold-not-active"  # one hold pays one purchase

    refund = await client.post("/v1/purchases/p-1/refunds", json={
        "refund_id": "r-1", "amount": "5.00", "occurred_at": basket["occurred_at"]})
    assert refund.status_code == 201, refund.text
    assert refund.json()["points_returned"] == 125 and refund.json()["points_reversed"] == 3  # a quarter
    refund = await client.post("/v1/purchases/p-1/refunds", json={
        "refund_id": "r-2", "amount": "15.00", "occurred_at": basket["occurred_at"]})
    assert refund.json()["points_returned"] == 375 and refund.json()["points_reversed"] == 12  # all of the rest
    returned = [e["data"] for e in await outbox_events(app, "points.refunded")]
    assert [(r["hold_id"], r["refund_id"], r["points"]) for r in returned] == [("h-1", "r-1", 125),
                                                                               ("h-1", "r-2", 375)]
    shown = await balance(client, "C-1")
    assert shown["available"] == 1000 and shown["lifetime_spent"] == 0
    await assert_balanced(app, "C-1")


async def test_a_purchase_captures_a_held_hold_or_refuses_one_that_cannot_pay(
        client: httpx.AsyncClient, app: FastAPI, travel: Callable[[timedelta], None]) -> None:
    await member_with(client, "C-1", 1000)
    await member_with(client, "C-2", 1000)
    assert (await hold(client, "h-big", "C-1", 900)).status_code == 201
    too_much = await client.post("/v1/purchases", json=now_purchase("p-1", "C-1", "5.00",
                                                                    points_paid={"hold_id": "h-big"}))
    assert too_much.status_code == 422, too_much.text  # 9.00 of points for 5.00
    foreign = await client.post("/v1/purchases", json=now_purchase("p-1", "C-2", "20.00",
                                                                  points_paid={"hold_id": "h-big"}))
    assert foreign.status_code == 422  # another member's hold
    assert (await client.post("/v1/holds/h-big/void")).status_code == 200
    voided = await client.post("/v1/purchases", json=now_purchase("p-1", "C-1", "20.00",
                                                                 points_paid={"hold_id": "h-big"}))
    assert voided.json()["type"] == "/problems/hold-not-active"
    assert (await hold(client, "h-late", "C-1", 100)).status_code == 201
    travel(timedelta(minutes=20))
    late = await client.post("/v1/purchases", json=now_purchase("p-1", "C-1", "20.00",
                                                              points_paid={"hold_id": "h-late"}))
    assert late.json()["type"] == "/problems/hold-expired"
    assert (await balance(client, "C-1"))["available"] == 1000
    program_body = program(redemption={"earn_on_points_paid": True})
    assert (await client.put("/v1/program", json=program_body)).status_code == 200
    assert (await hold(client, "h-3", "C-1", 500)).status_code == 201
    earned = await client.post("/v1/purchases", json=now_purchase("p-3", "C-1", "20.00",
                                                                 points_paid={"hold_id": "h-3"}))
    assert earned.json()["points_earned"] == 20  # the points-paid part earns too
    await assert_balanced(app, "C-1")
    await assert_balanced(app, "C-2")


async def test_a_redemption_of_a_reward_cannot_spend_held_points(client: httpx.AsyncClient, app: FastAPI) -> None:
    from services.points.service.redemptions import pay_redemption
    from shared.messaging import events

    await member_with(client, "C-1", 100)
    assert (await hold(client, "h-1", "C-1", 80)).status_code == 201
    async with app.state.runtime.db.transaction() as session:
        await pay_redemption(session, events.RedemptionRequested(
            member_id="C-1", redemption_id="r-1", reward_id="cup", points_cost=50))
    declined = [e["data"] for e in await outbox_events(app, "points.spend_declined")]
    assert [d["reason"] for d in declined] == ["insufficient-points"]
    await assert_balanced(app, "C-1")


async def test_the_program_keeps_its_redemption_settings(client: httpx.AsyncClient) -> None:
    settings = {"point_value": "0.005", "min_points": 100, "max_share": "0.25", "hold_minutes": 30,
                "earn_on_points_paid": True}
    answer = await client.put("/v1/program", json=program(redemption=settings))
    assert answer.status_code == 200, answer.text
    assert answer.json()["redemption"] == settings
    assert (await client.get("/v1/program")).json()["redemption"] == settings
    for bad in ({"point_value": "0"}, {"max_share": "1.5"}, {"hold_minutes": 0}, {"earn_on_points_paid": "yes"},
                {"point_value": 0.01}, {"min_points": -1}, {"other": 1}):
        refused = await client.put("/v1/program", json=program(redemption=bad))
        assert refused.status_code == 422, (bad, refused.text)
    assert (await client.get("/v1/program")).json()["redemption"] == settings
