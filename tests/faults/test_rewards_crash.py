"""The rewards process killed (SIGKILL) right after it accepted a redemption, and points away while a
redemption waits for it: every redemption still settles, its points are taken exactly once and its stock is
reserved once.

The services run as processes on the ``loyalty_sys_*`` databases (shared with tests/system, one module at a
time) and a private topic prefix."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.messaging.events import Topic
from tests.system.harness import ServiceProcess, System, envelopes_on, eventually, running_system

pytestmark = pytest.mark.slow

PROGRAM = {"currency": "USD", "points_per_unit": "1", "expiry_days": 365, "pending_days": 0,
           "excluded_categories": []}
# A settlement in the crash tests can only come from the outbox and the inbox, never from a re-ask.
NO_REASK = {"REWARDS_REDEMPTION_RETRY_SECONDS": "3600", "REWARDS_REDEMPTION_RETRY_MAX_SECONDS": "3600"}
# A killed consumer stays in its group until its session times out (10 s); the restarted one waits for that.
SETTLE_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def system(pg: None, kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_system(kafka, tmp_path_factory.mktemp("rewards-crash-logs"), "c", {"rewards": NO_REASK}) as running:
        with running.client("points") as points:
            assert points.put("/v1/program", json=PROGRAM).status_code == 200
        yield running


def query(process: ServiceProcess, statement: str, **params: Any) -> list[Any]:
    """Rows from a service's own database (readable while the process is dead)."""

    async def run() -> list[Any]:
        engine = create_async_engine(process.env[f"{process.name.upper()}_DATABASE_URL"])
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(text(statement), params)).all())
        finally:
            await engine.dispose()

    return asyncio.run(run())


def on_kafka(system: System, topic: Topic, event_type: str, redemption_id: str) -> list[dict[str, Any]]:
    """Every envelope of ``event_type`` about the redemption on the topic, read from the beginning."""
    return envelopes_on(system["rewards"].env, topic.value, lambda envelope: (
        envelope.get("type") == event_type and envelope.get("data", {}).get("redemption_id") == redemption_id))


def enroll(points: httpx.Client, member_id: str, with_points: int) -> None:
    assert points.put(f"/v1/members/{member_id}", json={"name": member_id}).status_code == 201
    bought = points.post("/v1/purchases", json={
        "purchase_id": f"{member_id}-p", "member_id": member_id, "store_id": "store-1", "channel": "pos",
        "occurred_at": "2026-11-20T10:15:00Z", "currency": "USD", "total": f"{with_points}.00"})
    assert bought.status_code == 201, bought.text


def new_reward(rewards: httpx.Client, stock: int) -> str:
    reward_id = f"reward-{uuid.uuid4().hex[:8]}"
    assert rewards.put(f"/v1/rewards/{reward_id}", json={"name": "Cup", "points_cost": 100, "stock": stock,
                                                          "active": True}).status_code == 201
    return reward_id


def settled(rewards: httpx.Client, redemption_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def done() -> bool:
        try:
            found.update(rewards.get(f"/v1/redemptions/{redemption_id}", params={"wait": 5}).json())
        except httpx.HTTPError:
            return False
        return found["status"] != "pending"

    eventually(done, f"redemption {redemption_id} settles", timeout=SETTLE_TIMEOUT)
    return found


def assert_paid_once(system: System, member_id: str, redemption_id: str, reward_id: str, *, balance: int,
                     stock_left: int) -> dict[str, Any]:
    with system.client("points") as points, system.client("rewards") as rewards:
        done = settled(rewards, redemption_id)
        assert done["status"] == "confirmed" and done["voucher_code"], done
        assert points.get(f"/v1/members/{member_id}/balance").json()["available"] == balance
        ledger = points.get(f"/v1/members/{member_id}/ledger", params={"limit": 500}).json()["items"]
        spends = [e for e in ledger if e["kind"] == "spend"]
        assert [(e["points"], e["redemption_id"]) for e in spends] == [(-100, redemption_id)], ledger
        assert rewards.get(f"/v1/rewards/{reward_id}").json()["stock_left"] == stock_left
        voucher = rewards.get(f"/v1/vouchers/{done['voucher_code']}").json()
        assert voucher["status"] == "active" and voucher["redemption_id"] == redemption_id
        return done


def phase(system: System, redemption_id: str) -> str:
    """Where the saga stood when rewards died, from the two databases."""
    status = query(system["rewards"], "SELECT status FROM redemption WHERE redemption_id = :r", r=redemption_id)
    published = query(system["rewards"], "SELECT published_at FROM outbox WHERE event_type = 'redemption.requested' "
                                         "AND payload LIKE :p", p=f'%"redemption_id":"{redemption_id}"%')
    paid = query(system["points"], "SELECT outcome FROM redemption_debit WHERE redemption_id = :r", r=redemption_id)
    if status and status[0][0] != "pending":
        return f"rewards had already {status[0][0]} it"
    if paid:
        return "points had paid, rewards had not settled"
    if published and published[0][0] is not None:
        return "request on Kafka, points had not paid yet"
    return "request still in the rewards outbox"


@pytest.mark.parametrize("kill_after", [0.0, 0.05, 0.2, 0.5])
def test_rewards_killed_after_accepting_a_redemption(system: System, kill_after: float) -> None:
    member = f"crash-{uuid.uuid4().hex[:8]}"
    redemption_id = f"{member}-r"
    with system.client("points") as points, system.client("rewards") as rewards:
        enroll(points, member, with_points=500)
        reward = new_reward(rewards, stock=5)
        accepted = rewards.post("/v1/redemptions", json={"redemption_id": redemption_id, "member_id": member,
                                                         "reward_id": reward, "quantity": 1})
        assert accepted.status_code == 202, accepted.text
    time.sleep(kill_after)
    system["rewards"].kill()
    where = phase(system, redemption_id)
    time.sleep(1.0)  # points may answer while rewards is dead
    system["rewards"].start()
    system["rewards"].wait_ready()
    print(f"killed {kill_after * 1000:.0f} ms after 202: {where}")

    assert_paid_once(system, member, redemption_id, reward, balance=400, stock_left=4)
    assert query(system["rewards"], "SELECT asks FROM redemption WHERE redemption_id = :r",
                 r=redemption_id) == [(1,)], "settled without asking again"


def test_a_redemption_waiting_for_points_is_asked_again_and_paid_once(system: System) -> None:
    rewards_process, points_process = system["rewards"], system["points"]
    original_env = dict(rewards_process.env)
    rewards_process.env.update({"REWARDS_REDEMPTION_RETRY_SECONDS": "1", "REWARDS_REDEMPTION_RETRY_MAX_SECONDS": "1"})
    rewards_process.restart(kill=False)
    try:
        member = f"away-{uuid.uuid4().hex[:8]}"
        redemption_id = f"{member}-r"
        with system.client("points") as points:
            enroll(points, member, with_points=300)
        with system.client("rewards") as rewards:
            reward = new_reward(rewards, stock=5)
            points_process.stop()
            accepted = rewards.post("/v1/redemptions", json={"redemption_id": redemption_id, "member_id": member,
                                                             "reward_id": reward, "quantity": 1})
            assert accepted.status_code == 202, accepted.text

            def asks() -> int:
                rows = query(rewards_process, "SELECT asks FROM redemption WHERE redemption_id = :r", r=redemption_id)
                return int(rows[0][0])

            eventually(lambda: asks() >= 3, "rewards asks again while points is away", timeout=20)
            assert rewards.get(f"/v1/redemptions/{redemption_id}").json()["status"] == "pending"
            points_process.start()
            points_process.wait_ready()

        assert_paid_once(system, member, redemption_id, reward, balance=200, stock_left=4)
        asked = asks()
        assert asked >= 3
        eventually(lambda: len(on_kafka(system, Topic.REDEMPTIONS, "redemption.requested", redemption_id)) == asked,
                   "every ask reached Kafka", timeout=20)
        # points answered the repeats too (same answer, no second debit): more than one points.spent
        eventually(lambda: len(on_kafka(system, Topic.POINTS, "points.spent", redemption_id)) >= 2,
                   "points answers the repeated requests", timeout=20)
        assert asks() == asked, "no more asks once confirmed"
    finally:
        if points_process.proc is None or points_process.proc.poll() is not None:
            points_process.start()
            points_process.wait_ready()
        rewards_process.env.clear()
        rewards_process.env.update(original_env)
        rewards_process.restart(kill=False)
