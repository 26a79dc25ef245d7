"""A goal's catalog reward (``goal.reached`` from points) against PostgreSQL: one free redemption with a voucher,
from stock, exactly once; rejected with a reason when the reward cannot be given; believed only from points on
loyalty.points (real Kafka); cancelled like any other, without points to give back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from ops.dlt import list_dead_letters
from shared.messaging import events
from shared.messaging.consumer import EventConsumer, EventRefused
from shared.messaging.events import Topic
from shared.runtime import Runtime
from tests.rewards.builders import (
    VOUCHER_CODE,
    goal_reached,
    put_reward,
    redeem,
    redemption,
    stock_left,
    tier_changed,
)
from tests.support import deliver, outbox_events, service_client

GOAL = "goal-5f0c2a9e41d7b3c8a6e19d02"


async def redemption_events(app: FastAPI) -> list[tuple[str, dict[str, Any]]]:
    return [(e["type"], e["data"]) for e in await outbox_events(app) if e["type"].startswith("redemption.")]


# --- given -----------------------------------------------------------------------------------------


async def test_a_goal_reward_is_a_free_confirmed_redemption_with_a_voucher(client: httpx.AsyncClient, app: FastAPI
                                                                          ) -> None:
    """Only the reward is asked: a min tier the member lacks and a limit do not stop what the program gives."""
    await put_reward(client, "cup", points_cost=300, stock=5, min_tier="gold", per_member_limit=1)
    await deliver(app, tier_changed("ada", "bronze"))
    assert await deliver(app, goal_reached(GOAL, "ada")) == "handled"

    gift = (await client.get(f"/v1/redemptions/{GOAL}")).json()
    assert {k: gift[k] for k in ("member_id", "reward_id", "quantity", "points_cost", "status", "reason", "source")} \
        == {"member_id": "ada", "reward_id": "cup", "quantity": 1, "points_cost": 0, "status": "confirmed",
            "reason": None, "source": "goal"}
    assert VOUCHER_CODE.match(gift["voucher_code"]), gift
    assert await stock_left(client, "cup") == 4
    assert await redemption_events(app) == [("redemption.confirmed", {
        "member_id": "ada", "redemption_id": GOAL, "reward_id": "cup", "quantity": 1, "points_cost": 0})]
    voucher = (await client.get(f"/v1/vouchers/{gift['voucher_code']}")).json()
    assert voucher["status"] == "active" and voucher["redemption_id"] == GOAL and voucher["member_id"] == "ada"
    page = (await client.get("/v1/members/ada/redemptions")).json()
    assert page["items"] == [gift]


async def test_a_gift_holds_stock_but_not_the_members_limit(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup", stock=2, per_member_limit=1)
    await deliver(app, goal_reached(GOAL, "ada"))
    catalog = (await client.get("/v1/rewards", params={"member_id": "ada"})).json()["items"]
    assert catalog[0]["stock_left"] == 1 and catalog[0]["reason"] == "insufficient-points"  # not limit-reached
    mine = await redeem(client, "r-1", "ada", "cup")  # the one the limit allows, paid for
    assert mine["source"] == "member" and mine["points_cost"] == 100
    assert await stock_left(client, "cup") == 0
    answer = await client.post("/v1/redemptions", json=redemption("r-2", "bob", "cup"))
    assert answer.json()["type"] == "/problems/out-of-stock"
    [requested] = await outbox_events(app, "redemption.requested")  # points is asked for the paid one only
    assert requested["data"]["redemption_id"] == "r-1"


async def test_an_unlimited_reward_is_given_without_stock(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup", stock=None)
    await deliver(app, goal_reached(GOAL, "ada"))
    assert (await client.get(f"/v1/redemptions/{GOAL}")).json()["status"] == "confirmed"
    assert await stock_left(client, "cup") is None


async def test_the_same_goal_again_gives_nothing_more(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup", stock=5)
    assert await deliver(app, goal_reached(GOAL, "ada"), event_id="evt-1") == "handled"
    gift = (await client.get(f"/v1/redemptions/{GOAL}")).json()
    assert await deliver(app, goal_reached(GOAL, "ada"), event_id="evt-1") == "duplicate"  # Kafka redelivery
    assert await deliver(app, goal_reached(GOAL, "ada")) == "handled"  # published twice: a new event id
    assert (await client.get(f"/v1/redemptions/{GOAL}")).json() == gift
    assert await stock_left(client, "cup") == 4
    assert [t for t, _ in await redemption_events(app)] == ["redemption.confirmed"]
    assert len((await client.get("/v1/members/ada/redemptions")).json()["items"]) == 1


async def test_a_goal_without_a_reward_is_not_rewards_business(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup", stock=5)
    assert await deliver(app, goal_reached(GOAL, "ada", reward_id=None, points=50)) == "handled"
    assert (await client.get(f"/v1/redemptions/{GOAL}")).status_code == 404
    assert await redemption_events(app) == [] and await stock_left(client, "cup") == 5


# --- not given -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("terms", "reason"), [
    ({"stock": 0}, "out-of-stock"),
    ({"stock": 5, "active": False}, "reward-inactive"),
    ({"stock": 5, "valid_until": "2020-01-01T00:00:00Z"}, "reward-unavailable"),
    ({"stock": 5, "valid_from": "2099-01-01T00:00:00Z"}, "reward-unavailable"),
])
async def test_a_reward_that_cannot_be_given_is_a_rejected_redemption(
    client: httpx.AsyncClient, app: FastAPI, terms: dict[str, Any], reason: str
) -> None:
    await put_reward(client, "cup", **terms)
    assert await deliver(app, goal_reached(GOAL, "ada")) == "handled"
    gift = (await client.get(f"/v1/redemptions/{GOAL}")).json()
    assert (gift["status"], gift["reason"], gift["voucher_code"], gift["source"]) == ("rejected", reason, None,
                                                                                     "goal")
    assert await stock_left(client, "cup") == terms["stock"]
    assert await redemption_events(app) == [("redemption.rejected", {
        "member_id": "ada", "redemption_id": GOAL, "reward_id": "cup", "quantity": 1, "points_cost": 0,
        "reason": reason})]
    await put_reward(client, "cup", stock=5)  # restocked: the goal was settled, it is not given later
    assert await deliver(app, goal_reached(GOAL, "ada")) == "handled"
    assert (await client.get(f"/v1/redemptions/{GOAL}")).json() == gift


async def test_an_unknown_reward_is_rejected_without_a_row_and_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    """A redemption refers to a reward of the catalog, so none is stored; the event says why, once."""
    assert await deliver(app, goal_reached(GOAL, "ada", reward_id="no-such-reward")) == "handled"
    assert await deliver(app, goal_reached(GOAL, "ada", reward_id="no-such-reward")) == "handled"
    assert (await client.get(f"/v1/redemptions/{GOAL}")).status_code == 404
    assert await redemption_events(app) == [("redemption.rejected", {
        "member_id": "ada", "redemption_id": GOAL, "reward_id": "no-such-reward", "quantity": 1, "points_cost": 0,
        "reason": "reward-not-found"})]


async def test_the_last_unit_goes_to_one_of_a_goal_and_a_request(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup", stock=1)
    request, _ = await asyncio.gather(
        client.post("/v1/redemptions", json=redemption("r-1", "bob", "cup")),
        deliver(app, goal_reached(GOAL, "ada")),
    )
    gift = (await client.get(f"/v1/redemptions/{GOAL}")).json()
    assert (request.status_code == 202) != (gift["status"] == "confirmed"), (request.text, gift)
    assert await stock_left(client, "cup") == 0


# --- the id ----------------------------------------------------------------------------------------


async def test_a_client_cannot_take_a_goals_id_nor_a_goal_a_clients(client: httpx.AsyncClient, app: FastAPI) -> None:
    await put_reward(client, "cup", stock=5)
    await deliver(app, goal_reached(GOAL, "ada"))
    taken = await client.post("/v1/redemptions", json=redemption(GOAL, "ada", "cup"))
    assert taken.status_code == 409 and taken.json()["type"] == "/problems/idempotency-conflict"

    await redeem(client, "goal-by-a-client", "bob", "cup")
    with pytest.raises(EventRefused, match="taken by a client's redemption"):  # to the dead letters, at once
        await deliver(app, goal_reached("goal-by-a-client", "bob"))
    mine = (await client.get("/v1/redemptions/goal-by-a-client")).json()
    assert mine["source"] == "member" and mine["status"] == "pending"
    assert await stock_left(client, "cup") == 3


# --- believed only from points ---------------------------------------------------------------------


@pytest.mark.usefixtures("kafka")
async def test_a_forged_goal_gives_nothing_and_is_dead_lettered(client: httpx.AsyncClient, app: FastAPI,
                                                               kafka: str, prefix: str) -> None:
    await put_reward(client, "cup", stock=5)
    sent = [
        (Topic.POINTS, goal_reached("goal-from-tiers", "ada").envelope("tiers")),  # not its producer
        (Topic.MEMBERS, goal_reached("goal-off-topic", "ada").envelope("points")),  # not its topic
        (Topic.POINTS, goal_reached(GOAL, "ada").envelope("points")),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka, enable_idempotence=True)
    await producer.start()
    try:
        for topic, envelope in sent:
            await producer.send_and_wait(prefix + topic, value=envelope.model_dump_json().encode(), key=b"ada")
    finally:
        await producer.stop()
    runtime: Runtime = app.state.runtime
    spec = runtime.spec
    consumer = EventConsumer(runtime.db, spec.metadata.tables["inbox"], service="rewards", bootstrap=kafka,
                             topic_prefix=prefix, topics=spec.consumes, handlers=spec.handlers,
                             batch_handlers=spec.batch_handlers)
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not (consumer.handled == 1 and consumer.dead_lettered == 2):
            assert asyncio.get_running_loop().time() < deadline, "the consumer did not get there in time"
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()
    page = (await client.get("/v1/members/ada/redemptions")).json()["items"]
    assert [r["redemption_id"] for r in page] == [GOAL]
    assert await stock_left(client, "cup") == 4
    letters = await list_dead_letters(kafka, prefix)
    assert [letter.event_type for letter in letters] == ["goal.reached", "goal.reached"]
    errors = "\n".join(letter.error for letter in letters)
    assert "is produced by points, not 'tiers'" in errors and "belongs on" in errors


# --- cancelled -------------------------------------------------------------------------------------


async def test_a_cancelled_gift_gives_its_unit_back_and_points_nothing(
    client: httpx.AsyncClient, app: FastAPI, empty_db: Callable[[str], Awaitable[str]]
) -> None:
    await put_reward(client, "cup", stock=5)
    await deliver(app, goal_reached(GOAL, "ada"))
    cancelled = await client.post(f"/v1/redemptions/{GOAL}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["source"] == "goal"
    voucher = (await client.get(f"/v1/vouchers/{cancelled.json()['voucher_code']}")).json()
    assert voucher["status"] == "cancelled"
    assert await stock_left(client, "cup") == 5
    [(_, data)] = [e for e in await redemption_events(app) if e[0] == "redemption.cancelled"]
    assert data["points_cost"] == 0

    # points paid nothing for it, so it finds no debit and gives nothing back
    await empty_db("points")
    async with service_client("points") as (points, _):
        assert await deliver(points, events.RedemptionCancelled.model_validate(data), source="rewards") == "handled"
        assert await outbox_events(points) == []
