"""The catalog against PostgreSQL: creating and changing rewards, paging, eligibility marks, validation."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from shared.clock import utcnow
from shared.messaging import events
from tests.rewards.builders import (
    captured,
    deliver_batch,
    earned,
    held,
    put_reward,
    redeem,
    released,
    reward,
    settle,
    stock_left,
    tier_changed,
)
from tests.support import deliver


async def test_put_creates_then_replaces_a_reward(client: httpx.AsyncClient) -> None:
    created = await client.put("/v1/rewards/cup", json=reward(stock=10, per_member_limit=2,
                                                              description="Ceramic, 300 ml"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["reward_id"] == "cup" and body["stock"] == 10 and body["stock_left"] == 10
    assert body["per_member_limit"] == 2 and body["active"] is True and body["created_at"].endswith("Z")
    replaced = await client.put("/v1/rewards/cup", json=reward(name="Big cup", points_cost=150, stock=None))
    assert replaced.status_code == 200
    got = (await client.get("/v1/rewards/cup")).json()
    assert got["name"] == "Big cup" and got["points_cost"] == 150
    assert got["stock"] is None and got["stock_left"] is None, "null stock is unlimited"
    assert got["description"] is None and got["per_member_limit"] is None, "PUT replaces the terms"
    assert got["created_at"] == body["created_at"]


async def test_minimal_body_as_clients_send_it(client: httpx.AsyncClient) -> None:
    answer = await client.put("/v1/rewards/mug", json={"name": "Mug", "points_cost": 100, "stock": 5,
                                                       "per_member_limit": None, "active": True})
    assert answer.status_code == 201, answer.text
    assert answer.json()["min_tier"] is None and answer.json()["valid_from"] is None


async def test_unknown_reward_is_404_reward_not_found(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/rewards/nothing")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"] == "/problems/reward-not-found"


async def test_new_stock_counts_what_redemptions_hold(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup", stock=10)
    await redeem(client, "r-1", "m-1", "cup", quantity=3)
    await redeem(client, "r-2", "m-2", "cup", quantity=2)
    await settle(app, client, "r-2", paid=False)  # rejected: its 2 units are free again
    assert await stock_left(client, "cup") == 7
    assert (await put_reward(client, "cup", stock=20))["stock_left"] == 17
    assert (await put_reward(client, "cup", stock=2))["stock_left"] == 0


@pytest.mark.parametrize(("change", "field"), [
    ({"valid_from": "2026-12-01T00:00:00Z", "valid_until": "2026-11-01T00:00:00Z"}, "valid_until"),
    ({"valid_from": "2026-12-01T00:00:00Z", "valid_until": "2026-12-01T00:00:00Z"}, "valid_until"),
    ({"valid_from": "2026-12-01T00:00:00"}, "valid_from"),  # no offset
    ({"points_cost": 0}, "points_cost"),
    ({"points_cost": "lots"}, "points_cost"),
    ({"stock": -1}, "stock"),
    ({"per_member_limit": 0}, "per_member_limit"),
    ({"min_tier": "gold tier"}, "min_tier"),
    ({"name": ""}, "name"),
    ({"colour": "red"}, "colour"),
])
async def test_bad_rewards_are_422_naming_the_field(client: httpx.AsyncClient, change: dict[str, object],
                                                    field: str) -> None:
    answer = await client.put("/v1/rewards/cup", json=reward(**change))
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"] == "/problems/validation-error"
    assert any(field in err["loc"] for err in answer.json()["errors"]), answer.json()
    assert (await client.get("/v1/rewards/cup")).status_code == 404


@pytest.mark.parametrize(("field", "escaped"), [("name", "Cup\\u0000"), ("description", "a\\u0000b"),
                                               ("description", "a\\udad4b")])
async def test_text_postgresql_cannot_store_is_422(client: httpx.AsyncClient, field: str, escaped: str) -> None:
    """A NUL character or a lone surrogate (valid JSON escapes) is refused, not a 500 from the database."""
    body = {"name": "Cup", "points_cost": 100, field: "?"}
    raw = json.dumps(body).replace('"?"', f'"{escaped}"')
    answer = await client.put("/v1/rewards/cup", content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["loc"] == ["body", field]


async def test_catalog_pages_by_reward_id(client: httpx.AsyncClient) -> None:
    for reward_id in ("e", "c", "a", "d", "b"):
        await put_reward(client, reward_id)
    first = (await client.get("/v1/rewards", params={"limit": 2})).json()
    assert [r["reward_id"] for r in first["items"]] == ["a", "b"]
    second = (await client.get("/v1/rewards", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    third = (await client.get("/v1/rewards", params={"limit": 2, "cursor": second["next_cursor"]})).json()
    assert [r["reward_id"] for r in second["items"] + third["items"]] == ["c", "d", "e"]
    assert third["next_cursor"] is None
    assert all(item["eligible"] is None for item in first["items"]), "marks only with ?member_id="
    assert (await client.get("/v1/rewards", params={"cursor": "garbage"})).status_code == 422
    assert (await client.get("/v1/rewards", params={"limit": 501})).status_code == 422
    assert (await client.get("/v1/rewards", params={"limit": 0})).status_code == 422


async def test_catalog_marks_what_a_member_may_redeem(client: httpx.AsyncClient, app: FastAPI) -> None:
    now = utcnow()
    await put_reward(client, "a-open", points_cost=100)
    await put_reward(client, "b-silver", min_tier="silver")
    await put_reward(client, "c-gold", min_tier="gold")
    await put_reward(client, "d-sold-out", stock=0)
    await put_reward(client, "e-inactive", active=False)
    await put_reward(client, "f-ended", valid_until=(now - timedelta(days=1)).isoformat())
    await put_reward(client, "g-once", per_member_limit=1)
    await put_reward(client, "h-dear", points_cost=501)
    await deliver(app, tier_changed("ada", "silver"))
    await deliver(app, earned("ada", 500))
    await redeem(client, "ada-1", "ada", "g-once")

    page = (await client.get("/v1/rewards", params={"member_id": "ada"})).json()
    marks = {item["reward_id"]: (item["eligible"], item["reason"]) for item in page["items"]}
    assert marks == {
        "a-open": (True, None),
        "b-silver": (True, None),
        "c-gold": (False, "tier-too-low"),
        "d-sold-out": (False, "out-of-stock"),
        "e-inactive": (False, "reward-unavailable"),
        "f-ended": (False, "reward-unavailable"),
        "g-once": (False, "limit-reached"),
        "h-dear": (False, "insufficient-points"),
    }
    stranger = (await client.get("/v1/rewards", params={"member_id": "nobody", "limit": 2})).json()
    assert [i["reason"] for i in stranger["items"]] == ["insufficient-points", "tier-too-low"], \
        "someone not heard of has no points and the lowest tier"


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "batch"])
async def test_held_points_are_not_available_for_rewards(client: httpx.AsyncClient, app: FastAPI, batched: bool
                                                        ) -> None:
    await put_reward(client, "big", points_cost=300)
    await put_reward(client, "small", points_cost=200)

    async def tell(*story: events.EventData) -> None:
        if batched:
            assert await deliver_batch(app, *story) == ["handled"] * len(story)
        else:
            for data in story:
                assert await deliver(app, data) == "handled"

    async def reasons() -> dict[str, str | None]:
        page = (await client.get("/v1/rewards", params={"member_id": "ada"})).json()
        return {item["reward_id"]: item["reason"] for item in page["items"]}

    await tell(earned("ada", 500), held("h-1", "ada", 150, available=350),
               held("h-2", "ada", 100, available=250, in_holds=250))
    assert await reasons() == {"big": "insufficient-points", "small": None}
    await tell(released("h-1", "ada", 150, available=400, in_holds=100, reason="expired"),
               released("h-2", "ada", 100, available=500))
    assert await reasons() == {"big": None, "small": None}
    await tell(held("h-2", "ada", 400, available=100), captured("h-2", "ada", 400, available=100))
    assert await reasons() == {"big": "insufficient-points", "small": "insufficient-points"}


async def test_balance_and_tier_follow_the_latest_events(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "gold-cup", min_tier="gold", points_cost=100)
    await deliver(app, tier_changed("bob", "gold"))
    await deliver(app, earned("bob", 50))
    marks = (await client.get("/v1/rewards", params={"member_id": "bob"})).json()["items"]
    assert marks[0]["reason"] == "insufficient-points"
    await deliver(app, earned("bob", 100))
    await deliver(app, tier_changed("bob", "silver"))
    marks = (await client.get("/v1/rewards", params={"member_id": "bob"})).json()["items"]
    assert marks[0]["reason"] == "tier-too-low"
    # a ladder from an older event arriving late does not replace the newer one
    await deliver(app, tier_changed("cy", "gold", ["gold", "silver"], at="2026-01-01T00:00:00Z"))
    marks = (await client.get("/v1/rewards", params={"member_id": "bob"})).json()["items"]
    assert marks[0]["reason"] == "tier-too-low"
