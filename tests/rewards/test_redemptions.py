"""The redemption saga against PostgreSQL: immediate refusals, points' answers through the inbox, waiting for
the answer, idempotent requests and contention for the last units."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from services.rewards.service import waiting
from tests.rewards.builders import (
    VOUCHER_CODE,
    available,
    captured,
    declined,
    deliver_batch,
    put_reward,
    redeem,
    redemption,
    refunded_to_checkout,
    settle,
    spent,
    stock_left,
    tier_changed,
)
from tests.support import deliver, outbox_events, service_client

# --- immediate refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(("terms", "body", "status", "slug"), [
    ({}, redemption("x-1", "ada", "no-such-reward"), 404, "reward-not-found"),
    ({"active": False}, redemption("x-1", "ada", "cup"), 409, "reward-unavailable"),
    ({"valid_from": "2099-01-01T00:00:00Z"}, redemption("x-1", "ada", "cup"), 409, "reward-unavailable"),
    ({"valid_until": "2020-01-01T00:00:00Z"}, redemption("x-1", "ada", "cup"), 409, "reward-unavailable"),
    ({"min_tier": "gold"}, redemption("x-1", "ada", "cup"), 409, "tier-too-low"),
    ({"stock": 2}, redemption("x-1", "ada", "cup", quantity=3), 409, "out-of-stock"),
    ({"per_member_limit": 2}, redemption("x-1", "ada", "cup", quantity=3), 409, "limit-reached"),
])
async def test_refusals_leave_nothing_behind(client: httpx.AsyncClient, app: FastAPI, terms: dict[str, Any],
                                             body: dict[str, Any], status: int, slug: str) -> None:
    await put_reward(client, "cup", **{"stock": 10, **terms})
    await deliver(app, tier_changed("ada", "silver"))
    answer = await client.post("/v1/redemptions", json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"] == f"/problems/{slug}"
    assert await stock_left(client, "cup") == (terms.get("stock", 10))
    assert (await client.get("/v1/redemptions/x-1")).status_code == 404
    assert await outbox_events(app, "redemption.requested") == []
    # the id was not burnt: the same id may be used for a request that can go ahead
    await put_reward(client, "ok", stock=10)
    assert (await client.post("/v1/redemptions", json=redemption("x-1", "ada", "ok"))).status_code == 202


async def test_limit_counts_pending_and_confirmed_but_not_rejected(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup", per_member_limit=2)
    await redeem(client, "l-1", "ada", "cup")
    await settle(app, client, "l-1", paid=True)
    await redeem(client, "l-2", "ada", "cup")
    refused = await client.post("/v1/redemptions", json=redemption("l-3", "ada", "cup"))
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/limit-reached"
    await settle(app, client, "l-2", paid=False)
    await redeem(client, "l-3", "ada", "cup")
    await redeem(client, "b-1", "bob", "cup", quantity=2)  # the limit is per member


async def test_tier_gate_follows_the_ladder(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "lounge", min_tier="silver")
    await deliver(app, tier_changed("gil", "gold"))
    await redeem(client, "g-1", "gil", "lounge")
    refused = await client.post("/v1/redemptions", json=redemption("n-1", "newcomer", "lounge"))
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/tier-too-low"


# --- the saga --------------------------------------------------------------------------------------


async def test_paid_redemption_is_confirmed_with_a_voucher(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup", points_cost=120, stock=5)
    accepted = await redeem(client, "r-1", "ada", "cup", quantity=2)
    assert accepted["status"] == "pending" and accepted["points_cost"] == 240
    assert accepted["voucher_code"] is None and accepted["created_at"].endswith("Z")
    assert await stock_left(client, "cup") == 3
    [requested] = await outbox_events(app, "redemption.requested")
    assert requested["subject"] == "ada"
    assert requested["data"] == {"member_id": "ada", "redemption_id": "r-1", "reward_id": "cup", "quantity": 2,
                                 "points_cost": 240}

    assert await deliver(app, spent("r-1", "ada", 240, available=60)) == "handled"
    done = (await client.get("/v1/redemptions/r-1")).json()
    assert done["status"] == "confirmed" and done["reason"] is None
    assert VOUCHER_CODE.match(done["voucher_code"]), done
    assert await stock_left(client, "cup") == 3
    [confirmed] = await outbox_events(app, "redemption.confirmed")
    assert confirmed["data"]["redemption_id"] == "r-1" and confirmed["data"]["points_cost"] == 240
    voucher = (await client.get(f"/v1/vouchers/{done['voucher_code']}")).json()
    assert voucher["status"] == "active" and voucher["redemption_id"] == "r-1" and voucher["member_id"] == "ada"


async def test_declined_redemption_is_rejected_and_its_stock_released(client: httpx.AsyncClient, app: FastAPI
                                                                      ) -> None:
    await put_reward(client, "cup", stock=5)
    await redeem(client, "r-2", "bob", "cup", quantity=2)
    assert await stock_left(client, "cup") == 3
    assert await deliver(app, declined("r-2", "bob", 200, reason="member-inactive")) == "handled"
    done = (await client.get("/v1/redemptions/r-2")).json()
    assert done["status"] == "rejected" and done["reason"] == "member-inactive" and done["voucher_code"] is None
    assert await stock_left(client, "cup") == 5
    [rejected] = await outbox_events(app, "redemption.rejected")
    assert rejected["data"]["reason"] == "member-inactive" and rejected["data"]["quantity"] == 2
    assert await outbox_events(app, "redemption.confirmed") == []


async def test_duplicate_and_late_answers_change_nothing(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup", stock=5)
    await redeem(client, "r-3", "ada", "cup")
    answer = spent("r-3", "ada", 100)
    assert await deliver(app, answer, event_id="evt-1") == "handled"
    confirmed = (await client.get("/v1/redemptions/r-3")).json()
    assert await deliver(app, answer, event_id="evt-1") == "duplicate"  # Kafka redelivery: the inbox skips it
    assert await deliver(app, spent("r-3", "ada", 100)) == "handled"  # points answering twice
    assert await deliver(app, declined("r-3", "ada", 100)) == "handled"  # a contradicting late answer
    assert (await client.get("/v1/redemptions/r-3")).json() == confirmed
    assert await stock_left(client, "cup") == 4
    assert len(await outbox_events(app, "redemption.confirmed")) == 1
    assert await outbox_events(app, "redemption.rejected") == []

    await redeem(client, "r-4", "ada", "cup")
    await deliver(app, declined("r-4", "ada", 100))
    await deliver(app, declined("r-4", "ada", 100))
    await deliver(app, spent("r-4", "ada", 100))
    assert (await client.get("/v1/redemptions/r-4")).json()["status"] == "rejected"
    assert await stock_left(client, "cup") == 4, "released once"
    assert await deliver(app, spent("unknown", "ada", 100)) == "handled"  # not ours: ignored


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "batch"])
async def test_a_checkout_capture_settles_no_redemption(client: httpx.AsyncClient, app: FastAPI, batched: bool
                                                       ) -> None:
    """points.spent of a captured hold has no redemption_id: it only moves the balance, even beside answers
    to redemptions in one batch."""
    await put_reward(client, "cup", stock=5)
    await redeem(client, "r-5", "ada", "cup")
    pending = (await client.get("/v1/redemptions/r-5")).json()
    story = [captured("h-1", "ada", 300, available=200), captured("h-3", "bob", 50, available=0),
             refunded_to_checkout("h-1", "ada", 30, available=230)]
    if batched:
        assert await deliver_batch(app, *story) == ["handled"] * 3
    else:
        for data in story:
            assert await deliver(app, data) == "handled"
    assert (await client.get("/v1/redemptions/r-5")).json() == pending
    assert (await available(app, "ada"), await available(app, "bob")) == (230, 0)
    assert await stock_left(client, "cup") == 4
    assert await outbox_events(app, "redemption.confirmed") == []

    answers = [captured("h-2", "ada", 30, available=200), spent("r-5", "ada", 100, available=100)]
    if batched:
        assert await deliver_batch(app, *answers) == ["handled"] * 2
    else:
        for answer in answers:
            assert await deliver(app, answer) == "handled"
    assert (await client.get("/v1/redemptions/r-5")).json()["status"] == "confirmed"
    assert [e["data"]["redemption_id"] for e in await outbox_events(app, "redemption.confirmed")] == ["r-5"]
    assert await available(app, "ada") == 100


# --- waiting for the answer ------------------------------------------------------------------------


async def test_wait_is_woken_by_the_consumers_commit(client: httpx.AsyncClient, app: FastAPI,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "RECHECK_SECONDS", 30.0)  # only the in-process wake-up can answer early
    await put_reward(client, "cup")
    await redeem(client, "w-1", "ada", "cup")

    async def points_answers() -> None:
        await asyncio.sleep(0.3)
        await deliver(app, spent("w-1", "ada", 100))

    started = time.monotonic()
    waited, _ = await asyncio.gather(client.get("/v1/redemptions/w-1", params={"wait": 5}), points_answers())
    assert waited.status_code == 200 and waited.json()["status"] == "confirmed"
    assert time.monotonic() - started < 4


async def test_wait_sees_a_settlement_made_by_another_instance(client: httpx.AsyncClient) -> None:
    await put_reward(client, "cup")
    await redeem(client, "w-2", "ada", "cup")
    async with service_client("rewards") as (other_instance, _):
        async def other_instance_settles() -> None:
            await asyncio.sleep(0.3)
            await deliver(other_instance, declined("w-2", "ada", 100))

        started = time.monotonic()
        waited, _ = await asyncio.gather(client.get("/v1/redemptions/w-2", params={"wait": 5}),
                                         other_instance_settles())
    assert waited.json()["status"] == "rejected"
    assert time.monotonic() - started < 4


async def test_wait_answers_pending_after_the_time_without_polling_hard(client: httpx.AsyncClient, app: FastAPI
                                                                        ) -> None:
    await put_reward(client, "cup")
    await redeem(client, "w-3", "ada", "cup")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    engine = app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        started = time.monotonic()
        waited = await client.get("/v1/redemptions/w-3", params={"wait": 1.2})
        elapsed = time.monotonic() - started
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert waited.status_code == 200 and waited.json()["status"] == "pending"
    assert elapsed >= 1.2
    assert len(statements) <= 8, f"{len(statements)} statements in 1.2 s: re-reads at most every 250 ms"


@pytest.mark.parametrize("wait", ["10.5", "-1", "nan", "soon"])
async def test_wait_beyond_ten_seconds_is_422(client: httpx.AsyncClient, wait: str) -> None:
    answer = await client.get("/v1/redemptions/any", params={"wait": wait})
    assert answer.status_code == 422 and answer.json()["errors"][0]["loc"] == ["query", "wait"]


async def test_unknown_redemption_is_404_at_once_even_when_waiting(client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    answer = await client.get("/v1/redemptions/nope", params={"wait": 5})
    assert answer.status_code == 404 and answer.json()["type"] == "/problems/not-found"
    assert time.monotonic() - started < 4


# --- idempotent requests ---------------------------------------------------------------------------


async def test_retried_request_replays_and_a_changed_body_conflicts(client: httpx.AsyncClient, app: FastAPI
                                                                    ) -> None:
    await put_reward(client, "cup", stock=5)
    await put_reward(client, "mug", stock=5)
    first = await client.post("/v1/redemptions", json=redemption("i-1", "ada", "cup"))
    await deliver(app, spent("i-1", "ada", 100))
    retry = await client.post("/v1/redemptions", json=redemption("i-1", "ada", "cup"))
    assert first.status_code == 202 and retry.status_code == 200
    assert retry.json() == first.json(), "the first answer, replayed"
    for changed in (redemption("i-1", "ada", "mug"), redemption("i-1", "ada", "cup", quantity=2)):
        conflict = await client.post("/v1/redemptions", json=changed)
        assert conflict.status_code == 409 and conflict.json()["type"] == "/problems/idempotency-conflict"
    assert await stock_left(client, "cup") == 4 and await stock_left(client, "mug") == 5
    assert len(await outbox_events(app, "redemption.requested")) == 1


async def test_twenty_identical_requests_at_once_make_one_redemption(client: httpx.AsyncClient, app: FastAPI
                                                                     ) -> None:
    await put_reward(client, "cup", stock=5)
    answers = await asyncio.gather(*[
        client.post("/v1/redemptions", json=redemption("i-2", "ada", "cup")) for _ in range(20)
    ])
    assert sorted(a.status_code for a in answers) == [200] * 19 + [202]
    assert len({a.text for a in answers}) == 1
    assert await stock_left(client, "cup") == 4
    assert len(await outbox_events(app, "redemption.requested")) == 1


# --- contention ------------------------------------------------------------------------------------


async def test_twenty_members_race_for_three_units(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "last-cups", stock=3)
    answers = await asyncio.gather(*[
        client.post("/v1/redemptions", json=redemption(f"c-{i}", f"member-{i}", "last-cups")) for i in range(20)
    ])
    assert sorted(a.status_code for a in answers) == [202] * 3 + [409] * 17
    assert {a.json()["type"] for a in answers if a.status_code == 409} == {"/problems/out-of-stock"}
    assert await stock_left(client, "last-cups") == 0
    assert len(await outbox_events(app, "redemption.requested")) == 3


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "field"), [
    ({**redemption("v-1", "ada", "cup"), "quantity": 0}, "quantity"),
    ({**redemption("v-1", "ada", "cup"), "quantity": 101}, "quantity"),
    ({**redemption("v-1", "ada", "cup"), "quantity": "two"}, "quantity"),
    ({"member_id": "ada", "reward_id": "cup"}, "redemption_id"),
    (redemption("v 1", "ada", "cup"), "redemption_id"),
    (redemption("v-1", "a" * 65, "cup"), "member_id"),
    ({**redemption("v-1", "ada", "cup"), "points": 5}, "points"),
])
async def test_bad_requests_are_422_problems(client: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    await put_reward(client, "cup")
    answer = await client.post("/v1/redemptions", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"] == "/problems/validation-error"
    assert any(field in err["loc"] for err in answer.json()["errors"]), answer.json()


async def test_not_json_is_422(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/redemptions", content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 422 and answer.json()["type"] == "/problems/validation-error"
