"""What the cheaper saga must still guarantee: requests of one reward run side by side yet never oversell or
break a per-member limit, an operator's new stock counts every held unit, a batch of points' answers settles
exactly as the answers one by one would, and all of it on SQLite too."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.rewards.service import redemptions
from shared.db.migrations import upgrade
from shared.messaging import events
from tests.rewards.builders import (
    VOUCHER_CODE,
    available,
    declined,
    deliver_batch,
    put_reward,
    redeem,
    redemption,
    spent,
    stock_left,
)
from tests.support import outbox_events, service_client

# --- requests side by side -------------------------------------------------------------------------


async def test_requests_for_more_than_is_left_never_oversell(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cups", stock=5)
    answers = await asyncio.gather(*[
        client.post("/v1/redemptions", json=redemption(f"q-{i}", f"member-{i}", "cups", quantity=2))
        for i in range(10)
    ])
    assert sorted(a.status_code for a in answers) == [202] * 2 + [409] * 8
    assert {a.json()["type"] for a in answers if a.status_code == 409} == {"/problems/out-of-stock"}
    assert await stock_left(client, "cups") == 1
    assert len(await outbox_events(app, "redemption.requested")) == 2


async def test_one_member_racing_for_a_limited_reward_gets_the_limit(client: httpx.AsyncClient, app: FastAPI
                                                                     ) -> None:
    await put_reward(client, "cup", stock=10, per_member_limit=2)
    answers = await asyncio.gather(*[
        client.post("/v1/redemptions", json=redemption(f"m-{i}", "ada", "cup")) for i in range(10)
    ])
    assert sorted(a.status_code for a in answers) == [202] * 2 + [409] * 8
    assert {a.json()["type"] for a in answers if a.status_code == 409} == {"/problems/limit-reached"}
    assert await stock_left(client, "cup") == 8


async def test_a_new_stock_set_during_requests_counts_every_held_unit(client: httpx.AsyncClient) -> None:
    await put_reward(client, "cup", stock=100)
    requests = [client.post("/v1/redemptions", json=redemption(f"s-{i}", f"member-{i}", "cup")) for i in range(20)]
    changes = [client.put("/v1/rewards/cup", json={"name": "Cup", "points_cost": 100, "stock": 50})
               for _ in range(3)]
    answers = await asyncio.gather(*requests, *changes)
    assert all(a.status_code in (200, 202) for a in answers), [a.text for a in answers]
    assert await stock_left(client, "cup") == 50 - 20


@pytest.mark.parametrize("stock", [None, 100])
async def test_requests_in_flight_when_the_stock_changes_are_counted(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, stock: int | None) -> None:
    """The requests have read the reward's terms (unlimited, or 100) and have not committed yet: the
    operator's new stock waits for them and counts their units, and they take theirs without a deadlock."""
    await put_reward(client, "cup", stock=stock)
    member_facts = redemptions._member_facts

    async def slowly(*args: Any) -> Any:
        await asyncio.sleep(0.3)  # the operator's change comes in here
        return await member_facts(*args)

    monkeypatch.setattr(redemptions, "_member_facts", slowly)

    async def operator() -> httpx.Response:
        await asyncio.sleep(0.1)
        return await client.put("/v1/rewards/cup", json={"name": "Cup", "points_cost": 100, "stock": 50})

    *requests, change = await asyncio.gather(
        *[client.post("/v1/redemptions", json=redemption(f"f-{i}", f"member-{i}", "cup")) for i in range(3)],
        operator())
    assert [r.status_code for r in requests] == [202] * 3 and change.status_code == 200
    assert await stock_left(client, "cup") == 47


async def test_a_changed_request_for_an_unknown_reward_still_conflicts(client: httpx.AsyncClient) -> None:
    await put_reward(client, "cup")
    await redeem(client, "u-1", "ada", "cup")
    conflict = await client.post("/v1/redemptions", json=redemption("u-1", "ada", "no-such-reward"))
    assert conflict.status_code == 409 and conflict.json()["type"] == "/problems/idempotency-conflict"
    missing = await client.post("/v1/redemptions", json=redemption("u-2", "ada", "no-such-reward"))
    assert missing.status_code == 404 and missing.json()["type"] == "/problems/reward-not-found"


# --- a batch of points' answers --------------------------------------------------------------------


async def test_a_batch_of_answers_settles_as_one_by_one_would(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup", stock=10)
    for rid, member in (("b-1", "ada"), ("b-2", "ada"), ("b-3", "bob"), ("b-4", "cy")):
        await redeem(client, rid, member, "cup")
    outcomes = await deliver_batch(
        app, spent("b-1", "ada", 100, available=500), spent("b-2", "ada", 100, available=400),
        spent("b-1", "ada", 100, available=400),  # points answering a re-ask again: a new event, no effect
        spent("unknown", "bob", 100, available=350), spent("b-3", "bob", 100, available=300),
        declined("b-4", "cy", 100, reason="member-inactive"), declined("b-4", "cy", 100),
    )
    assert outcomes == ["handled"] * 7
    done = {rid: (await client.get(f"/v1/redemptions/{rid}")).json() for rid in ("b-1", "b-2", "b-3", "b-4")}
    assert [done[rid]["status"] for rid in ("b-1", "b-2", "b-3")] == ["confirmed"] * 3
    codes = {done[rid]["voucher_code"] for rid in ("b-1", "b-2", "b-3")}
    assert len(codes) == 3 and all(VOUCHER_CODE.match(code) for code in codes)
    for rid in ("b-1", "b-2", "b-3"):
        voucher = (await client.get(f"/v1/vouchers/{done[rid]['voucher_code']}")).json()
        assert voucher["redemption_id"] == rid and voucher["status"] == "active"
    assert done["b-4"]["status"] == "rejected" and done["b-4"]["reason"] == "member-inactive"
    assert await stock_left(client, "cup") == 7
    assert [e["data"]["redemption_id"] for e in await outbox_events(app, "redemption.confirmed")] == [
        "b-1", "b-2", "b-3"]
    assert [e["data"]["reason"] for e in await outbox_events(app, "redemption.rejected")] == ["member-inactive"]
    assert (await available(app, "ada"), await available(app, "bob")) == (400, 300)

    late = await deliver_batch(app, spent("b-4", "cy", 100), declined("b-1", "ada", 100))
    assert late == ["handled", "handled"]
    assert (await client.get("/v1/redemptions/b-4")).json() == done["b-4"]
    assert (await client.get("/v1/redemptions/b-1")).json() == done["b-1"]
    assert await stock_left(client, "cup") == 7


async def test_a_waiting_request_is_answered_from_the_batch(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup")
    await redeem(client, "w-1", "ada", "cup")
    await redeem(client, "w-2", "bob", "cup")

    async def points_answers() -> None:
        await asyncio.sleep(0.3)
        await deliver_batch(app, spent("w-1", "ada", 100), declined("w-2", "bob", 100))

    first, second, _ = await asyncio.gather(client.get("/v1/redemptions/w-1", params={"wait": 5}),
                                            client.get("/v1/redemptions/w-2", params={"wait": 5}), points_answers())
    assert first.json() == (await client.get("/v1/redemptions/w-1")).json()
    assert first.json()["status"] == "confirmed" and VOUCHER_CODE.match(first.json()["voucher_code"])
    assert second.json() == (await client.get("/v1/redemptions/w-2")).json()
    assert second.json()["status"] == "rejected"


# --- SQLite ----------------------------------------------------------------------------------------


@pytest.fixture
async def sqlite_rewards(tmp_path: Path) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path / 'rewards.db'}"
    await asyncio.to_thread(upgrade, "rewards", url, "head")
    async with service_client("rewards", database_url=url) as pair:
        yield pair


async def test_the_saga_on_sqlite(sqlite_rewards: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = sqlite_rewards
    await put_reward(client, "cup", stock=3, per_member_limit=2)
    answers = await asyncio.gather(*[
        client.post("/v1/redemptions", json=redemption(f"l-{i}", f"member-{i % 2}", "cup")) for i in range(6)
    ])
    assert sorted(a.status_code for a in answers) == [202] * 3 + [409] * 3
    accepted = [a.json() for a in answers if a.status_code == 202]
    assert await stock_left(client, "cup") == 0
    replay = await client.post("/v1/redemptions", json=redemption(accepted[0]["redemption_id"],
                                                                  accepted[0]["member_id"], "cup"))
    assert replay.status_code == 200 and replay.json() == accepted[0]

    paid, unpaid, other = (a["redemption_id"] for a in accepted)
    waited, _ = await asyncio.gather(
        client.get(f"/v1/redemptions/{paid}", params={"wait": 5}),
        deliver_batch(app, spent(paid, "member-0", 100, available=50), declined(unpaid, "member-1", 100)),
    )
    assert waited.json()["status"] == "confirmed" and VOUCHER_CODE.match(waited.json()["voucher_code"])
    assert (await client.get(f"/v1/redemptions/{unpaid}")).json()["status"] == "rejected"
    assert await stock_left(client, "cup") == 1
    assert await available(app, "member-0") == 50

    await deliver_batch(app, spent(other, "member-x", 100))
    cancelled = await client.post(f"/v1/redemptions/{other}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert await stock_left(client, "cup") == 2
    assert len(await outbox_events(app, events.RedemptionCancelled.TYPE)) == 1
