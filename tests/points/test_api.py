"""The points HTTP API against PostgreSQL: enrolment, purchases, balances, program, idempotency."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from shared.messaging import events
from tests.points.builders import enroll, purchase
from tests.support import deliver, outbox_events


async def test_enroll_then_update_member(client: httpx.AsyncClient, app: FastAPI) -> None:
    first = await client.put("/v1/members/C-1", json={"name": "Ada", "birth_date": "1990-12-10"})
    assert first.status_code == 201
    assert first.json()["status"] == "active" and first.json()["tier"] is None
    again = await client.put("/v1/members/C-1", json={"email": "ada@example.com"})
    assert again.status_code == 200
    got = (await client.get("/v1/members/C-1")).json()
    assert got["name"] == "Ada" and got["email"] == "ada@example.com"
    enrolled = await outbox_events(app, "member.enrolled")
    updated = await outbox_events(app, "member.updated")
    assert len(enrolled) == 1 and len(updated) == 1
    assert enrolled[0]["data"]["birth_month"] == 12
    assert "email" not in updated[0]["data"], "personal data stays in the points service"


async def test_purchase_earns_base_rate_and_writes_events(client: httpx.AsyncClient, app: FastAPI) -> None:
    await enroll(client, "C-2")
    response = await client.post("/v1/purchases", json=purchase("p-1", "C-2", "120.00"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["points_earned"] == 120 and body["status"] == "credited"
    assert body["breakdown"] == [{"rule_id": "base", "points": 120}]
    assert body["balance"] == {"available": 120, "pending": 0}
    balance = (await client.get("/v1/members/C-2/balance")).json()
    assert balance["available"] == 120 and balance["lifetime_earned"] == 120
    recorded = await outbox_events(app, "purchase.recorded")
    assert recorded[0]["subject"] == "C-2" and recorded[0]["data"]["total"] == "120.00"
    assert len(await outbox_events(app, "points.earned")) == 1


async def test_lines_earn_except_excluded_categories(client: httpx.AsyncClient) -> None:
    await client.put("/v1/program", json={"currency": "USD", "points_per_unit": "2", "expiry_days": 365,
                                          "pending_days": 0, "excluded_categories": ["tobacco"]})
    await enroll(client, "C-3")
    lines = [{"sku": "A", "category": "grocery", "quantity": 2, "unit_price": "10.25"},
             {"sku": "T", "category": "tobacco", "quantity": 1, "unit_price": "9.50"}]
    response = await client.post("/v1/purchases", json=purchase("p-3", "C-3", "30.00", lines=lines))
    assert response.status_code == 201, response.text
    assert response.json()["points_earned"] == 41


async def test_retried_purchase_credited_once_and_changed_body_conflicts(client: httpx.AsyncClient) -> None:
    await enroll(client, "C-4")
    first = await client.post("/v1/purchases", json=purchase("p-4", "C-4", "50.00"))
    retry = await client.post("/v1/purchases", json=purchase("p-4", "C-4", "50.0"))
    assert first.status_code == 201 and retry.status_code == 200
    assert retry.json() == first.json()
    changed = await client.post("/v1/purchases", json=purchase("p-4", "C-4", "51.00"))
    assert changed.status_code == 409
    assert changed.headers["content-type"].startswith("application/problem+json")
    assert changed.json()["type"] == "/problems/idempotency-conflict"
    assert (await client.get("/v1/members/C-4/balance")).json()["available"] == 50


async def test_concurrent_retries_of_one_purchase_credit_once(client: httpx.AsyncClient) -> None:
    await enroll(client, "C-5")
    answers = await asyncio.gather(*[
        client.post("/v1/purchases", json=purchase("p-5", "C-5", "10.00")) for _ in range(50)
    ])
    assert sorted(a.status_code for a in answers) == [200] * 49 + [201]
    assert (await client.get("/v1/members/C-5/balance")).json()["available"] == 10


async def test_tier_multiplier_from_tier_changed(client: httpx.AsyncClient, app: FastAPI) -> None:
    await enroll(client, "C-6")
    event = events.TierChanged(member_id="C-6", from_tier="bronze", to_tier="silver", rank=1,
                               earn_multiplier="1.5", reason="upgrade", at="2026-11-20T10:00:00Z")
    assert await deliver(app, event, event_id="tier-evt-1") == "handled"
    assert await deliver(app, event, event_id="tier-evt-1") == "duplicate"
    body = (await client.post("/v1/purchases", json=purchase("p-6", "C-6", "100.00"))).json()
    assert body["points_earned"] == 150
    assert body["breakdown"] == [{"rule_id": "base", "points": 100}, {"rule_id": "tier", "points": 50}]
    assert (await client.get("/v1/members/C-6")).json()["tier"] == "silver"


async def test_purchase_refusals(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/v1/purchases", json=purchase("p-7", "nobody"))
    assert unknown.status_code == 404 and unknown.json()["type"] == "/problems/member-not-found"
    await enroll(client, "C-7")
    euro = await client.post("/v1/purchases", json=purchase("p-8", "C-7", currency="EUR"))
    assert euro.status_code == 422 and euro.json()["type"] == "/problems/currency-mismatch"
    bad_lines = purchase("p-9", "C-7", "5.00", lines=[{"sku": "A", "quantity": 1, "unit_price": "4.00"}])
    mismatch = await client.post("/v1/purchases", json=bad_lines)
    assert mismatch.status_code == 422 and mismatch.json()["type"] == "/problems/validation-error"
    assert (await client.get("/v1/members/C-7/balance")).json()["available"] == 0
    # none of the refused ids was burnt: the same id can still be used for a valid purchase
    assert (await client.post("/v1/purchases", json=purchase("p-8", "C-7"))).status_code == 201



async def test_amounts_and_dates_within_limits(client: httpx.AsyncClient) -> None:
    await enroll(client, "C-8")
    cents = await client.post("/v1/purchases", json=purchase("p-10", "C-8", "12.345"))
    assert cents.status_code == 422 and "USD allows (2)" in cents.json()["detail"]
    ancient = await client.post("/v1/purchases", json=purchase("p-11", "C-8", occurred_at="1999-01-01T00:00:00Z"))
    assert ancient.status_code == 422 and ancient.json()["errors"][0]["loc"] == ["body", "occurred_at"]
    future = await client.post("/v1/purchases", json=purchase("p-12", "C-8", occurred_at="2099-01-01T00:00:00Z"))
    assert future.status_code == 422 and future.json()["errors"][0]["loc"] == ["body", "occurred_at"]
    huge = await client.post("/v1/purchases", json=purchase("p-13", "C-8", "1" + "0" * 20))
    assert huge.status_code == 422
    long_id = await client.post("/v1/purchases", json=purchase("p" * 65, "C-8"))
    assert long_id.status_code == 422
    assert (await client.get("/v1/members/C-8/balance")).json()["available"] == 0
