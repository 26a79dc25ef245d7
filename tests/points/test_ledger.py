"""Balances over time against PostgreSQL: refunds, pending points, expiry, adjustments, transfers, paging.
Every scenario ends with the ledger invariant."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from services.points import jobs
from shared.clock import utcnow
from shared.messaging import events
from tests.points.builders import available, buy, enroll, program, purchase
from tests.points.ledger_checks import assert_balanced
from tests.support import deliver, outbox_events

Travel = Callable[[timedelta], None]


async def refund(client: httpx.AsyncClient, purchase_id: str, refund_id: str, amount: str,
                 at: datetime | None = None) -> httpx.Response:
    """A refund at ``at``, by default now (the services' clock): never before the purchase."""
    return await client.post(f"/v1/purchases/{purchase_id}/refunds", json={
        "refund_id": refund_id, "amount": amount, "occurred_at": (at or utcnow()).isoformat()})


# --- refunds ---------------------------------------------------------------------------------------


async def test_partial_refunds_reverse_in_proportion_up_to_the_total(client: httpx.AsyncClient, app: FastAPI) -> None:
    await enroll(client, "r-1")
    await buy(client, "rp-1", "r-1", "100.00")
    at = utcnow()
    first = await refund(client, "rp-1", "rf-1", "30.00", at)
    assert first.status_code == 201 and first.json()["points_reversed"] == 30
    assert (await refund(client, "rp-1", "rf-1", "30.00", at)).status_code == 200  # a retry replays
    assert (await refund(client, "rp-1", "rf-1", "31.00")).status_code == 409
    too_much = await refund(client, "rp-1", "rf-2", "70.01")
    assert too_much.status_code == 422 and too_much.json()["type"] == "/problems/refund-exceeds-purchase"
    assert (await refund(client, "rp-1", "rf-2", "70.00")).json()["points_reversed"] == 70
    assert await available(client, "r-1") == 0
    refunded = await outbox_events(app, "purchase.refunded")
    assert [e["data"]["amount"] for e in refunded] == ["30.00", "70.00"]
    assert len(await outbox_events(app, "points.reversed")) == 2
    await assert_balanced(app, "r-1")


async def test_a_refund_has_the_currencys_decimals_and_follows_its_purchase(client: httpx.AsyncClient) -> None:
    """As a purchase: no more decimals than the currency has (USD 2, JPY none, BHD 3); and never dated
    before the purchase. Refused refunds keep nothing: the whole purchase is still refundable."""
    for currency, total, refused, accepted in (("USD", "10.00", ["0.001", "1.005", "0.0001"], "0.01"),
                                               ("JPY", "1000", ["0.5", "1.50", "999.99"], "1"),
                                               ("BHD", "10.000", ["0.0001", "1.0005"], "0.001")):
        await client.put("/v1/program", json=program(currency=currency))
        member, purchase_id = f"d-{currency}", f"dp-{currency}"
        await enroll(client, member)
        bought = await buy(client, purchase_id, member, total, currency=currency)
        for amount in refused:
            answer = await refund(client, purchase_id, f"df-{currency}-{amount}", amount)
            assert answer.status_code == 422, (currency, amount, answer.text)
            assert answer.json()["type"] == "/problems/validation-error"
            assert answer.json()["errors"][0]["loc"] == ["body", "amount"]
        assert (await refund(client, purchase_id, f"df-{currency}-ok", accepted)).status_code == 201
        rest = str(Decimal(total) - Decimal(accepted))
        assert (await refund(client, purchase_id, f"df-{currency}-rest", rest)).status_code == 201
        assert await available(client, member) == 0 < bought["points_earned"]


async def test_a_refund_dated_before_its_purchase_is_refused(client: httpx.AsyncClient) -> None:
    await enroll(client, "e-1")
    bought = await client.post("/v1/purchases", json=purchase("ep-1", "e-1", "50.00",
                                                              occurred_at="2026-11-20T10:15:00+01:00"))
    assert bought.status_code == 201
    for moment in ("2026-11-20T09:14:59Z", "2026-11-20T10:14:59+01:00", "2026-11-19T23:00:00-10:00"):
        answer = await refund(client, "ep-1", "ef-1", "50.00", datetime.fromisoformat(moment))
        assert answer.status_code == 422, (moment, answer.text)
        assert answer.json()["type"] == "/problems/validation-error"
        assert answer.json()["errors"][0]["loc"] == ["body", "occurred_at"]
    assert await available(client, "e-1") == 50
    same_instant = datetime.fromisoformat("2026-11-20T09:15:00Z")  # the purchase's own moment is fine
    assert (await refund(client, "ep-1", "ef-1", "50.00", same_instant)).json()["points_reversed"] == 50


async def test_bonus_points_come_back_only_with_a_full_refund(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.post("/v1/earning-rules", json={"rule_id": "welcome", "kind": "bonus", "points": 50,
                                                 "trigger": "first_purchase"})
    await enroll(client, "r-2")
    assert (await buy(client, "rp-2", "r-2", "40.00"))["points_earned"] == 90
    assert (await refund(client, "rp-2", "rf-3", "20.00")).json()["points_reversed"] == 20
    assert (await refund(client, "rp-2", "rf-4", "20.00")).json()["points_reversed"] == 70
    assert await available(client, "r-2") == 0
    await assert_balanced(app, "r-2")


async def test_refund_of_spent_points_goes_negative_and_later_earnings_repay(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await enroll(client, "r-3")
    await buy(client, "rp-3", "r-3", "100.00")
    await deliver(app, events.RedemptionRequested(member_id="r-3", redemption_id="x-1", reward_id="cup",
                                                  points_cost=80))
    assert await available(client, "r-3") == 20
    await refund(client, "rp-3", "rf-5", "100.00")
    assert await available(client, "r-3") == -80
    await assert_balanced(app, "r-3")
    await buy(client, "rp-4", "r-3", "50.00")
    assert await available(client, "r-3") == -30
    await buy(client, "rp-5", "r-3", "50.00")
    assert await available(client, "r-3") == 20
    await assert_balanced(app, "r-3")
    declined = await deliver(app, events.RedemptionRequested(member_id="r-3", redemption_id="x-2",
                                                             reward_id="cup", points_cost=21))
    assert declined == "handled"
    assert (await outbox_events(app, "points.spend_declined"))[0]["data"]["reason"] == "insufficient-points"


# --- pending points and expiry ---------------------------------------------------------------------


async def test_pending_points_become_available_after_the_return_window(
    client: httpx.AsyncClient, app: FastAPI, travel: Travel
) -> None:
    await client.put("/v1/program", json=program(pending_days=7))
    await enroll(client, "t-1")
    answer = await buy(client, "tp-1", "t-1", "100.00")
    assert answer["status"] == "pending" and answer["balance"] == {"available": 0, "pending": 100}
    travel(timedelta(days=3))
    assert (await refund(client, "tp-1", "tf-1", "40.00")).json()["balance"] == {"available": 0, "pending": 60}
    await assert_balanced(app, "t-1")
    travel(timedelta(days=5))
    balance = (await client.get("/v1/members/t-1/balance")).json()
    assert balance["available"] == 60 and balance["pending"] == 0
    await assert_balanced(app, "t-1")


async def test_expiry_job_expires_once_and_spends_take_soonest_lots(
    client: httpx.AsyncClient, app: FastAPI, travel: Travel
) -> None:
    await client.put("/v1/program", json=program(expiry_days=30))
    await enroll(client, "e-1")
    await buy(client, "ep-1", "e-1", "100.00")
    travel(timedelta(days=10))
    await buy(client, "ep-2", "e-1", "50.00")
    await deliver(app, events.RedemptionRequested(member_id="e-1", redemption_id="ex-1", reward_id="cup",
                                                  points_cost=70))  # from the older lot: 30 of it remain
    balance = (await client.get("/v1/members/e-1/balance")).json()
    assert [e["points"] for e in balance["expiring"]] == [30, 50]
    travel(timedelta(days=21))
    runtime = app.state.runtime
    assert await jobs.settle_due_members(runtime.db) == 1
    assert await jobs.settle_due_members(runtime.db) == 0
    assert await available(client, "e-1") == 50
    expired = await outbox_events(app, "points.expired")
    assert [e["data"]["points"] for e in expired] == [30]
    ledger = (await client.get("/v1/members/e-1/ledger")).json()["items"]
    assert [(e["kind"], e["points"]) for e in ledger] == [("expire", -30), ("spend", -70), ("earn", 50),
                                                          ("earn", 100)]
    await assert_balanced(app, "e-1")


# --- operators -------------------------------------------------------------------------------------


async def test_adjustments_record_the_actor_and_never_go_below_zero(client: httpx.AsyncClient, app: FastAPI) -> None:
    await enroll(client, "a-1")
    up = await client.post("/v1/members/a-1/adjustments",
                           json={"adjustment_id": "adj-1", "points": 40, "reason": "goodwill"})
    assert up.status_code == 201
    assert up.json()["kind"] == "adjust" and up.json()["actor"] == "bootstrap-admin"
    assert up.json()["balance_after"] == 40
    down = await client.post("/v1/members/a-1/adjustments",
                             json={"adjustment_id": "adj-2", "points": -41, "reason": "correction"})
    assert down.status_code == 422 and down.json()["type"] == "/problems/insufficient-points"
    zero = await client.post("/v1/members/a-1/adjustments", json={"adjustment_id": "adj-3", "points": 0,
                                                                  "reason": "x"})
    assert zero.status_code == 422
    fixed = await client.post("/v1/members/a-1/adjustments",
                              json={"adjustment_id": "adj-2", "points": -40, "reason": "correction"})
    assert fixed.status_code == 201
    assert await available(client, "a-1") == 0
    await assert_balanced(app, "a-1")


async def test_transfer_keeps_the_senders_expiry_dates(client: httpx.AsyncClient, app: FastAPI, travel: Travel) -> None:
    await enroll(client, "f-1")
    await enroll(client, "f-2")
    await buy(client, "fp-1", "f-1", "100.00")
    sender_expiry = (await client.get("/v1/members/f-1/balance")).json()
    travel(timedelta(days=340))
    body = {"transfer_id": "tr-1", "to_member_id": "f-2", "points": 60, "reason": "household"}
    moved = await client.post("/v1/members/f-1/transfers", json=body)
    assert moved.status_code == 201, moved.text
    assert [e["kind"] for e in moved.json()["entries"]] == ["transfer_out", "transfer_in"]
    assert (await client.post("/v1/members/f-1/transfers", json=body)).status_code == 200
    too_much = await client.post("/v1/members/f-1/transfers", json={**body, "transfer_id": "tr-2", "points": 41})
    assert too_much.status_code == 422 and too_much.json()["type"] == "/problems/insufficient-points"
    receiver = (await client.get("/v1/members/f-2/balance")).json()
    assert receiver["available"] == 60
    assert sender_expiry["expiring"] == [] and receiver["expiring"][0]["points"] == 60
    await assert_balanced(app, "f-1")
    await assert_balanced(app, "f-2")


async def test_ledger_pages_newest_first_with_a_cursor(client: httpx.AsyncClient) -> None:
    await enroll(client, "l-1")
    for i in range(7):
        await buy(client, f"lp-{i}", "l-1", f"{i + 1}.00")
    first = (await client.get("/v1/members/l-1/ledger", params={"limit": 3})).json()
    assert [e["points"] for e in first["items"]] == [7, 6, 5]
    second = (await client.get("/v1/members/l-1/ledger", params={"limit": 3, "cursor": first["next_cursor"]})).json()
    third = (await client.get("/v1/members/l-1/ledger", params={"limit": 3, "cursor": second["next_cursor"]})).json()
    assert [e["points"] for e in second["items"] + third["items"]] == [4, 3, 2, 1]
    assert third["next_cursor"] is None
    assert (await client.get("/v1/members/l-1/ledger", params={"cursor": "garbage"})).status_code == 422
    assert (await client.get("/v1/members/l-1/ledger", params={"limit": 501})).status_code == 422


async def test_suspended_member_earns_nothing_and_only_admin_changes_status(client: httpx.AsyncClient) -> None:
    await enroll(client, "s-1")
    assert (await client.put("/v1/members/s-1", json={"status": "suspended"})).json()["status"] == "suspended"
    refused = await client.post("/v1/purchases", json={
        "purchase_id": "sp-1", "member_id": "s-1", "occurred_at": "2026-11-20T10:15:00Z", "currency": "USD",
        "total": "10.00"})
    assert refused.status_code == 422 and refused.json()["type"] == "/problems/member-inactive"


# --- concurrency -----------------------------------------------------------------------------------


async def test_twenty_simultaneous_debits_against_a_balance_for_five(client: httpx.AsyncClient, app: FastAPI) -> None:
    await enroll(client, "c-1")
    await buy(client, "cp-1", "c-1", "100.00")
    outcomes = await asyncio.gather(*[
        deliver(app, events.RedemptionRequested(member_id="c-1", redemption_id=f"cx-{i}", reward_id="cup",
                                                points_cost=20))
        for i in range(20)
    ])
    assert outcomes.count("handled") == 20
    assert len(await outbox_events(app, "points.spent")) == 5
    assert len(await outbox_events(app, "points.spend_declined")) == 15
    assert await available(client, "c-1") == 0
    await assert_balanced(app, "c-1")


async def test_asked_again_points_answer_the_same_without_paying_twice(client: httpx.AsyncClient, app: FastAPI) -> None:
    await enroll(client, "c-2")
    await buy(client, "cp-2", "c-2", "100.00")
    request = events.RedemptionRequested(member_id="c-2", redemption_id="cx-a", reward_id="cup", points_cost=60)
    await deliver(app, request)
    await deliver(app, request)  # a new event id: rewards asking again
    assert len(await outbox_events(app, "points.spent")) == 2
    assert await available(client, "c-2") == 40
    await deliver(app, events.RedemptionCancelled(member_id="c-2", redemption_id="cx-a", reward_id="cup",
                                                  points_cost=60))
    await deliver(app, events.RedemptionCancelled(member_id="c-2", redemption_id="cx-a", reward_id="cup",
                                                  points_cost=60))
    assert await available(client, "c-2") == 100
    assert len(await outbox_events(app, "points.refunded")) == 1
    await assert_balanced(app, "c-2")


async def test_balance_read_is_one_index_lookup(client: httpx.AsyncClient, app: FastAPI) -> None:
    async with app.state.runtime.db.read() as session:
        plan = "\n".join((await session.execute(text(
            "EXPLAIN SELECT * FROM member WHERE member_id = 'C-1'"))).scalars())
    assert "Index Scan using pk_member" in plan, plan
