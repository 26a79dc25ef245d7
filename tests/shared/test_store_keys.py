"""A key lent to a till (store-bound: purchases:write, members:read, vouchers:use, redemptions:write for
store-12) is no master key: it reads no e-mail or phone, no other key's voucher codes, writes only for its
store, and an id another key used is a conflict for it, never that key's answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.clock import utcnow
from tests.points.builders import enroll, purchase
from tests.rewards.builders import put_reward, redemption, settle
from tests.shared.store_keys import ENROLLING_TILL, OTHER_TILL, SECOND_ADMIN, TILL, write_till_keys
from tests.support import service_client

Pair = tuple[FastAPI, httpx.AsyncClient]


@pytest.fixture
async def points(empty_db: Callable[[str], Awaitable[str]], tmp_path: Path) -> AsyncIterator[Pair]:
    await empty_db("points")
    async with service_client("points", api_keys_file=write_till_keys(tmp_path / "keys.json")) as pair:
        yield pair


@pytest.fixture
async def rewards(empty_db: Callable[[str], Awaitable[str]], tmp_path: Path) -> AsyncIterator[Pair]:
    await empty_db("rewards")
    async with service_client("rewards", api_keys_file=write_till_keys(tmp_path / "keys.json")) as pair:
        yield pair


def at_store(purchase_id: str, store_id: str | None, member_id: str = "C-1", total: str = "10.00") -> dict[str, Any]:
    return purchase(purchase_id, member_id, total, store_id=store_id, occurred_at=utcnow().isoformat())


def refund(refund_id: str, amount: str = "1.00") -> dict[str, Any]:
    return {"refund_id": refund_id, "amount": amount, "occurred_at": utcnow().isoformat()}


async def test_a_till_reads_no_email_or_phone(points: Pair) -> None:
    _, client = points
    await enroll(client, "C-1", name="Ada", email="ada@example.com", phone="+1 555 0100")
    mine = (await client.get("/v1/members/C-1", headers=TILL)).json()
    assert mine["email"] is None and mine["phone"] is None and mine["name"] == "Ada"
    assert "ada@example.com" not in (await client.get("/v1/members/C-1", headers=TILL)).text
    program_wide = (await client.get("/v1/members/C-1")).json()
    assert program_wide["email"] == "ada@example.com" and program_wide["phone"] == "+1 555 0100"
    # Nor in the answer to a write: a till that enrolls or updates a member gets the member without them.
    updated = await client.put("/v1/members/C-1", json={"name": "Ada L."}, headers=ENROLLING_TILL)
    assert updated.status_code == 200 and updated.json()["email"] is None and updated.json()["phone"] is None
    assert (await client.get("/v1/members/C-1")).json()["email"] == "ada@example.com"  # kept, only not shown


async def test_a_till_posts_purchases_only_for_its_store(points: Pair) -> None:
    _, client = points
    await enroll(client, "C-1")
    for store_id in (None, "store-13"):
        refused = await client.post("/v1/purchases", json=at_store(f"p-{store_id}", store_id), headers=TILL)
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"] == "/problems/forbidden" and "store-12" in refused.json()["detail"]
    accepted = await client.post("/v1/purchases", json=at_store("p-12", "store-12"), headers=TILL)
    assert accepted.status_code == 201, accepted.text
    ledger = (await client.get("/v1/members/C-1/ledger")).json()["items"]
    assert [entry["purchase_id"] for entry in ledger] == ["p-12"]  # the refused ones wrote nothing


async def test_a_batch_item_for_another_store_fails_alone(points: Pair) -> None:
    _, client = points
    await enroll(client, "C-1")
    batch = {"purchases": [at_store("b-1", "store-12"), at_store("b-2", "store-13"), at_store("b-3", None),
                           at_store("b-4", "store-12")]}
    answer = await client.post("/v1/purchases/batch", json=batch, headers=TILL)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [201, 403, 403, 201]
    assert {r["body"]["type"] for r in results[1:3]} == {"/problems/forbidden"}
    assert results[1]["body"]["status"] == 403 and results[1]["purchase_id"] == "b-2"


async def test_a_till_refunds_only_its_stores_purchases(points: Pair) -> None:
    _, client = points
    await enroll(client, "C-1")
    for purchase_id, store_id in (("p-13", "store-13"), ("p-none", None), ("p-12", "store-12")):
        assert (await client.post("/v1/purchases", json=at_store(purchase_id, store_id))).status_code == 201
    unknown = await client.post("/v1/purchases/p-missing/refunds", json=refund("r-0"), headers=TILL)
    for purchase_id in ("p-13", "p-none"):
        refused = await client.post(f"/v1/purchases/{purchase_id}/refunds", json=refund(f"r-{purchase_id}"),
                                    headers=TILL)
        # As an unknown purchase is answered: the till learns nothing of another store's purchases.
        assert refused.status_code == unknown.status_code == 404, refused.text
        assert refused.json()["type"] == unknown.json()["type"] == "/problems/not-found"
    assert (await client.post("/v1/purchases/p-12/refunds", json=refund("r-12"), headers=TILL)).status_code == 201
    # Untouched: the program's key can still refund all of store-13's purchase.
    assert (await client.post("/v1/purchases/p-13/refunds", json=refund("r-13", "10.00"))).status_code == 201


async def test_another_key_reusing_a_purchase_id_gets_a_conflict_not_the_answer(points: Pair) -> None:
    _, client = points
    await enroll(client, "C-1")
    body = at_store("store-12:r-1", "store-12")
    first = await client.post("/v1/purchases", json=body, headers=TILL)
    assert first.status_code == 201, first.text
    other = await client.post("/v1/purchases", json=body, headers=OTHER_TILL)
    assert other.status_code == 409, other.text
    assert other.json()["type"] == "/problems/idempotency-conflict"
    assert "points_earned" not in other.json() and "balance" not in other.json()
    retry = await client.post("/v1/purchases", json=body, headers=TILL)
    assert retry.status_code == 200 and retry.json() == first.json()


async def test_every_client_id_of_points_belongs_to_its_key(points: Pair) -> None:
    """refund_id, adjustment_id, transfer_id and rule_id too: another key's retry is 409, the key's own
    replays."""
    _, client = points
    await enroll(client, "C-1")
    await enroll(client, "C-2")
    assert (await client.post("/v1/purchases", json=at_store("p-1", "store-12", total="100.00"))).status_code == 201
    writes = [
        ("/v1/purchases/p-1/refunds", refund("r-1")),
        ("/v1/members/C-1/adjustments", {"adjustment_id": "a-1", "points": 5, "reason": "goodwill"}),
        ("/v1/members/C-1/transfers", {"transfer_id": "t-1", "to_member_id": "C-2", "points": 1}),
        ("/v1/earning-rules", {"rule_id": "double", "kind": "multiplier", "factor": "2",
                               "match": {"categories": ["grocery"]}}),
    ]
    for url, body in writes:
        first = await client.post(url, json=body)
        assert first.status_code == 201, (url, first.text)
        other = await client.post(url, json=body, headers=SECOND_ADMIN)
        assert other.status_code == 409 and other.json()["type"] == "/problems/idempotency-conflict", url
        retry = await client.post(url, json=body)
        assert retry.status_code == 200 and retry.json() == first.json(), url


async def test_voucher_codes_only_for_the_key_that_asked(rewards: Pair) -> None:
    app, client = rewards
    await put_reward(client, "cup")
    assert (await client.post("/v1/redemptions", json=redemption("r-other", "C-2", "cup"))).status_code == 202
    mine = await client.post("/v1/redemptions", json=redemption("r-mine", "C-1", "cup"), headers=TILL)
    assert mine.status_code == 202, mine.text
    other_code = (await settle(app, client, "r-other"))["voucher_code"]
    my_code = (await settle(app, client, "r-mine"))["voucher_code"]
    assert other_code and my_code

    other = await client.get("/v1/redemptions/r-other", headers=TILL)
    assert other.status_code == 200 and other.json()["voucher_code"] is None
    assert other.json()["status"] == "confirmed"  # the redemption itself may be read
    listed = await client.get("/v1/members/C-2/redemptions", headers=TILL)
    assert [r["voucher_code"] for r in listed.json()["items"]] == [None]
    waited = await client.get("/v1/redemptions/r-other?wait=0.1", headers=TILL)
    assert waited.json()["voucher_code"] is None
    for answer in (other, listed, waited):
        assert other_code not in answer.text and "created_by" not in answer.text

    assert (await client.get("/v1/redemptions/r-mine", headers=TILL)).json()["voucher_code"] == my_code
    assert [r["voucher_code"] for r in (await client.get("/v1/members/C-1/redemptions", headers=TILL)
                                        ).json()["items"]] == [my_code]
    # Another till of the same store did not ask for it either; the program's keys see every code.
    assert (await client.get("/v1/redemptions/r-mine", headers=OTHER_TILL)).json()["voucher_code"] is None
    assert (await client.get("/v1/redemptions/r-mine")).json()["voucher_code"] == my_code
    assert (await client.get("/v1/redemptions/r-other", headers=SECOND_ADMIN)).json()["voucher_code"] == other_code

    cancelled = await client.post("/v1/redemptions/r-other/cancel", headers=TILL)
    assert cancelled.status_code == 200 and cancelled.json()["voucher_code"] is None


async def test_a_till_uses_vouchers_only_at_its_store(rewards: Pair) -> None:
    app, client = rewards
    await put_reward(client, "cup")
    await client.post("/v1/redemptions", json=redemption("r-1", "C-1", "cup"))
    code = (await settle(app, client, "r-1"))["voucher_code"]
    assert (await client.get(f"/v1/vouchers/{code}", headers=TILL)).status_code == 200
    for body in ({"store_id": "store-13"}, {}, None):
        refused = await client.post(f"/v1/vouchers/{code}/use", json=body, headers=TILL)
        assert refused.status_code == 403, (body, refused.text)
        assert refused.json()["type"] == "/problems/forbidden" and "store-12" in refused.json()["detail"]
    refused_unknown = await client.post("/v1/vouchers/NOPE/use", json={"store_id": "store-13"}, headers=TILL)
    assert refused_unknown.status_code == 403  # refused before the voucher is looked at
    assert (await client.get(f"/v1/vouchers/{code}")).json()["status"] == "active"
    used = await client.post(f"/v1/vouchers/{code}/use", json={"store_id": "store-12"}, headers=TILL)
    assert used.status_code == 200, used.text
    assert used.json()["status"] == "used" and used.json()["store_id"] == "store-12"


async def test_another_key_reusing_a_redemption_id_gets_a_conflict(rewards: Pair) -> None:
    _, client = rewards
    await put_reward(client, "cup")
    body = redemption("r-1", "C-1", "cup")
    first = await client.post("/v1/redemptions", json=body, headers=TILL)
    assert first.status_code == 202
    other = await client.post("/v1/redemptions", json=body, headers=OTHER_TILL)
    assert other.status_code == 409 and other.json()["type"] == "/problems/idempotency-conflict"
    retry = await client.post("/v1/redemptions", json=body, headers=TILL)
    assert retry.status_code == 200 and retry.json() == first.json()
