"""After the saga, against PostgreSQL: vouchers at the till, cancellations, a member's redemptions, scopes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.http.auth import hash_key
from shared.http.pagination import encode_cursor
from tests.rewards.builders import put_reward, redeem, redemption, settle, stock_left
from tests.support import outbox_events, service_client


@pytest.fixture
async def voucher(client: httpx.AsyncClient, app: FastAPI) -> str:
    """The code of a confirmed redemption `v-1` of one `cup` (stock 5) by `ada`."""
    await put_reward(client, "cup", stock=5)
    await redeem(client, "v-1", "ada", "cup")
    code: str = (await settle(app, client, "v-1"))["voucher_code"]
    return code


# --- vouchers --------------------------------------------------------------------------------------


async def test_voucher_is_used_once(client: httpx.AsyncClient, voucher: str) -> None:
    used = await client.post(f"/v1/vouchers/{voucher}/use", json={"store_id": "store-12"})
    assert used.status_code == 200, used.text
    assert used.json()["status"] == "used" and used.json()["store_id"] == "store-12"
    assert used.json()["used_at"].endswith("Z")
    again = await client.post(f"/v1/vouchers/{voucher}/use", json={"store_id": "store-12"})
    assert again.status_code == 409 and again.json()["type"] == "/problems/voucher-already-used"
    assert (await client.get(f"/v1/vouchers/{voucher}")).json() == used.json()


async def test_code_may_be_typed_in_any_case_without_dashes(client: httpx.AsyncClient, voucher: str) -> None:
    typed = voucher.replace("-", "").lower()
    assert (await client.get(f"/v1/vouchers/{typed}")).json()["code"] == voucher
    assert (await client.post(f"/v1/vouchers/{typed}/use")).status_code == 200  # the body is optional


@pytest.mark.parametrize("code", ["22222-22222-22222", "not-a-code", "0" * 15])
async def test_unknown_voucher_is_404(client: httpx.AsyncClient, code: str) -> None:
    assert (await client.get(f"/v1/vouchers/{code}")).status_code == 404
    answer = await client.post(f"/v1/vouchers/{code}/use")
    assert answer.status_code == 404 and answer.json()["type"] == "/problems/not-found"


async def test_two_tills_using_one_voucher_at_once(client: httpx.AsyncClient, voucher: str) -> None:
    answers = await asyncio.gather(*[
        client.post(f"/v1/vouchers/{voucher}/use", json={"store_id": f"store-{i}"}) for i in range(2)
    ])
    assert sorted(a.status_code for a in answers) == [200, 409]
    winner = next(a.json() for a in answers if a.status_code == 200)
    assert (await client.get(f"/v1/vouchers/{voucher}")).json()["store_id"] == winner["store_id"]


# --- cancellations ---------------------------------------------------------------------------------


async def test_cancel_gives_back_stock_and_points(client: httpx.AsyncClient, app: FastAPI, voucher: str) -> None:
    assert await stock_left(client, "cup") == 4
    cancelled = await client.post("/v1/redemptions/v-1/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["voucher_code"] == voucher
    assert await stock_left(client, "cup") == 5
    assert (await client.get(f"/v1/vouchers/{voucher}")).json()["status"] == "cancelled"
    [event] = await outbox_events(app, "redemption.cancelled")
    assert event["data"] == {"member_id": "ada", "redemption_id": "v-1", "reward_id": "cup", "quantity": 1,
                             "points_cost": 100}
    refused = await client.post(f"/v1/vouchers/{voucher}/use")
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/conflict"
    # a retried cancel is answered as it is, and nothing happens twice
    again = await client.post("/v1/redemptions/v-1/cancel")
    assert again.status_code == 200 and again.json() == cancelled.json()
    assert await stock_left(client, "cup") == 5
    assert len(await outbox_events(app, "redemption.cancelled")) == 1


async def test_used_voucher_cannot_be_cancelled(client: httpx.AsyncClient, app: FastAPI, voucher: str) -> None:
    await client.post(f"/v1/vouchers/{voucher}/use")
    refused = await client.post("/v1/redemptions/v-1/cancel")
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/voucher-already-used"
    assert (await client.get("/v1/redemptions/v-1")).json()["status"] == "confirmed"
    assert await stock_left(client, "cup") == 4
    assert await outbox_events(app, "redemption.cancelled") == []


async def test_pending_and_rejected_redemptions_cannot_be_cancelled(client: httpx.AsyncClient, app: FastAPI
                                                                    ) -> None:
    await put_reward(client, "cup", stock=5)
    await redeem(client, "p-1", "ada", "cup")
    await redeem(client, "p-2", "ada", "cup")
    await settle(app, client, "p-2", paid=False)
    for redemption_id in ("p-1", "p-2"):
        refused = await client.post(f"/v1/redemptions/{redemption_id}/cancel")
        assert refused.status_code == 409 and refused.json()["type"] == "/problems/conflict"
    assert (await client.post("/v1/redemptions/nope/cancel")).status_code == 404
    assert await stock_left(client, "cup") == 4
    assert await outbox_events(app, "redemption.cancelled") == []


# --- a member's redemptions ------------------------------------------------------------------------


async def test_member_redemptions_page_newest_first(client: httpx.AsyncClient) -> None:
    await put_reward(client, "cup")
    for i in range(5):
        await redeem(client, f"m-{i}", "ada", "cup")
    await redeem(client, "other", "bob", "cup")
    first = (await client.get("/v1/members/ada/redemptions", params={"limit": 2})).json()
    assert [r["redemption_id"] for r in first["items"]] == ["m-4", "m-3"]
    rest: list[dict[str, Any]] = []
    cursor = first["next_cursor"]
    while cursor:
        page = (await client.get("/v1/members/ada/redemptions", params={"limit": 2, "cursor": cursor})).json()
        rest += page["items"]
        cursor = page["next_cursor"]
    assert [r["redemption_id"] for r in rest] == ["m-2", "m-1", "m-0"]
    assert (await client.get("/v1/members/nobody/redemptions")).json() == {"items": [], "next_cursor": None}
    for bad in ("garbage", encode_cursor(["2026-11-20T10:00:00", "m-1"]), encode_cursor([1, 2])):
        answer = await client.get("/v1/members/ada/redemptions", params={"cursor": bad})
        assert answer.status_code == 422 and answer.json()["errors"][0]["loc"] == ["query", "cursor"]


# --- scopes ----------------------------------------------------------------------------------------


async def test_each_call_needs_its_scope(tmp_path: Path, empty_db: Callable[[str], Awaitable[str]]) -> None:
    await empty_db("rewards")
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([
        {"name": "till", "key_sha256": hash_key("till-key"), "scopes": ["vouchers:use"]},
        {"name": "shop", "key_sha256": hash_key("shop-key"), "scopes": ["members:read", "redemptions:write"]},
    ]))
    async with service_client("rewards", api_keys_file=keys) as (_, client):
        await put_reward(client, "cup")
        till = {"Authorization": "Bearer till-key"}
        shop = {"Authorization": "Bearer shop-key"}
        assert (await client.get("/v1/rewards", headers=till)).status_code == 403
        assert (await client.post("/v1/redemptions", json=redemption("s-1", "ada", "cup"), headers=till)
                ).status_code == 403
        assert (await client.get("/v1/vouchers/22222-22222-22222", headers=till)).status_code == 404
        assert (await client.put("/v1/rewards/cup", json={"name": "x", "points_cost": 1}, headers=shop)
                ).status_code == 403
        assert (await client.get("/v1/vouchers/22222-22222-22222", headers=shop)).status_code == 403
        assert (await client.post("/v1/redemptions", json=redemption("s-1", "ada", "cup"), headers=shop)
                ).status_code == 202
        assert (await client.get("/v1/rewards", headers={"Authorization": "Bearer wrong"})).status_code == 401
