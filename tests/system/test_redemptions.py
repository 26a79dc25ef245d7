"""Every branch of the redemption saga through the real services, Kafka and PostgreSQL: confirmed, each reason
of rejection, cancellation, vouchers at the till, and contention for stock and for one voucher."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import httpx
import pytest

from tests.system.harness import System, eventually

pytestmark = pytest.mark.system

T = TypeVar("T")
PROGRAM = {"currency": "USD", "points_per_unit": "1", "expiry_days": 365, "pending_days": 0,
           "excluded_categories": []}


@pytest.fixture(scope="module")
def program(system: System) -> None:
    """One point per dollar, available at once."""
    with system.client("points") as points:
        assert points.put("/v1/program", json=PROGRAM).status_code == 200


@pytest.fixture
def points(system: System, program: None) -> Iterator[httpx.Client]:
    with system.client("points") as client:
        yield client


@pytest.fixture
def rewards(system: System, program: None) -> Iterator[httpx.Client]:
    with system.client("rewards") as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def enroll(points: httpx.Client, member_id: str, with_points: int = 0) -> None:
    """A member with ``with_points`` available (one purchase of that many dollars)."""
    assert points.put(f"/v1/members/{member_id}", json={"name": member_id}).status_code == 201
    if with_points:
        bought = points.post("/v1/purchases", json={
            "purchase_id": unique(f"{member_id}-p"), "member_id": member_id, "store_id": "store-1",
            "channel": "pos", "occurred_at": "2026-11-20T10:15:00Z", "currency": "USD",
            "total": f"{with_points}.00"})
        assert bought.status_code == 201 and bought.json()["points_earned"] == with_points, bought.text
    assert available(points, member_id) == with_points


def available(points: httpx.Client, member_id: str) -> int:
    value: int = points.get(f"/v1/members/{member_id}/balance").json()["available"]
    return value


def spends(points: httpx.Client, member_id: str) -> list[dict[str, Any]]:
    entries = points.get(f"/v1/members/{member_id}/ledger", params={"limit": 500}).json()["items"]
    return [e for e in entries if e["kind"] == "spend"]


def new_reward(rewards: httpx.Client, *, cost: int = 100, stock: int | None = 5) -> str:
    reward_id = unique("reward")
    made = rewards.put(f"/v1/rewards/{reward_id}", json={"name": "Cup", "points_cost": cost, "stock": stock,
                                                          "per_member_limit": None, "active": True})
    assert made.status_code == 201, made.text
    return reward_id


def stock_left(rewards: httpx.Client, reward_id: str) -> int | None:
    left: int | None = rewards.get(f"/v1/rewards/{reward_id}").json()["stock_left"]
    return left


def redeem(rewards: httpx.Client, member_id: str, reward_id: str) -> str:
    redemption_id = unique(f"{member_id}-r")
    accepted = rewards.post("/v1/redemptions", json={"redemption_id": redemption_id, "member_id": member_id,
                                                     "reward_id": reward_id, "quantity": 1})
    assert accepted.status_code == 202 and accepted.json()["status"] == "pending", accepted.text
    return redemption_id


def settled(rewards: httpx.Client, redemption_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(rewards.get(f"/v1/redemptions/{redemption_id}", params={"wait": 5}).json())
        return found["status"] != "pending"

    eventually(done, f"redemption {redemption_id} settles")
    return found


def at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Runs the calls in threads released together, so they reach the service at the same moment."""
    gate = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        gate.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


# --- the saga's branches ---------------------------------------------------------------------------


def test_paid_redemption_is_confirmed_with_a_voucher(points: httpx.Client, rewards: httpx.Client) -> None:
    member, reward = unique("ada"), new_reward(rewards, cost=120, stock=5)
    enroll(points, member, with_points=500)
    redemption_id = redeem(rewards, member, reward)
    assert stock_left(rewards, reward) == 4

    done = settled(rewards, redemption_id)
    assert done["status"] == "confirmed" and done["reason"] is None and done["points_cost"] == 120
    assert available(points, member) == 380
    [spend] = spends(points, member)
    assert spend["points"] == -120 and spend["redemption_id"] == redemption_id
    assert stock_left(rewards, reward) == 4
    voucher = rewards.get(f"/v1/vouchers/{done['voucher_code']}").json()
    assert voucher["status"] == "active" and voucher["redemption_id"] == redemption_id
    assert voucher["member_id"] == member and voucher["reward_id"] == reward
    listed = rewards.get(f"/v1/members/{member}/redemptions").json()["items"]
    assert [r["redemption_id"] for r in listed] == [redemption_id] and listed[0]["status"] == "confirmed"


def test_not_enough_points_is_rejected_and_the_stock_comes_back(points: httpx.Client, rewards: httpx.Client
                                                                 ) -> None:
    member, reward = unique("bob"), new_reward(rewards, cost=100, stock=2)
    enroll(points, member, with_points=99)
    redemption_id = redeem(rewards, member, reward)
    assert stock_left(rewards, reward) == 1

    done = settled(rewards, redemption_id)
    assert done["status"] == "rejected" and done["reason"] == "insufficient-points" and done["voucher_code"] is None
    assert stock_left(rewards, reward) == 2
    assert available(points, member) == 99 and spends(points, member) == []


def test_a_member_points_does_not_know_is_rejected(rewards: httpx.Client) -> None:
    reward = new_reward(rewards, stock=1)
    redemption_id = redeem(rewards, unique("ghost"), reward)
    assert stock_left(rewards, reward) == 0

    done = settled(rewards, redemption_id)
    assert done["status"] == "rejected" and done["reason"] == "member-not-found"
    assert stock_left(rewards, reward) == 1


def test_a_suspended_member_is_rejected_without_losing_points(points: httpx.Client, rewards: httpx.Client) -> None:
    member, reward = unique("sue"), new_reward(rewards, stock=3)
    enroll(points, member, with_points=300)
    suspended = points.put(f"/v1/members/{member}", json={"status": "suspended"})
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    redemption_id = redeem(rewards, member, reward)

    done = settled(rewards, redemption_id)
    assert done["status"] == "rejected" and done["reason"] == "member-inactive"
    assert stock_left(rewards, reward) == 3
    assert available(points, member) == 300 and spends(points, member) == []


def test_cancel_gives_points_and_stock_back_once(points: httpx.Client, rewards: httpx.Client) -> None:
    member, reward = unique("cy"), new_reward(rewards, cost=100, stock=5)
    enroll(points, member, with_points=250)
    redemption_id = redeem(rewards, member, reward)
    code = settled(rewards, redemption_id)["voucher_code"]
    assert available(points, member) == 150 and stock_left(rewards, reward) == 4

    cancelled = rewards.post(f"/v1/redemptions/{redemption_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    assert stock_left(rewards, reward) == 5
    assert rewards.get(f"/v1/vouchers/{code}").json()["status"] == "cancelled"
    eventually(lambda: available(points, member) == 250, "points gives the 100 points back")

    again = rewards.post(f"/v1/redemptions/{redemption_id}/cancel")
    assert again.status_code == 200 and again.json() == cancelled.json()
    used = rewards.post(f"/v1/vouchers/{code}/use", json={"store_id": "store-1"})
    assert used.status_code == 409, used.text
    # a second refund would have arrived by the time a later redemption of the member is settled
    settled(rewards, redeem(rewards, member, reward))
    assert available(points, member) == 150
    entries = points.get(f"/v1/members/{member}/ledger", params={"limit": 500}).json()["items"]
    assert [e["points"] for e in entries if e["kind"] == "refund" and e["redemption_id"] == redemption_id] == [100]
    assert stock_left(rewards, reward) == 4


def test_a_voucher_is_used_once_at_the_till(points: httpx.Client, rewards: httpx.Client) -> None:
    member, reward = unique("di"), new_reward(rewards)
    enroll(points, member, with_points=100)
    redemption_id = redeem(rewards, member, reward)
    code = settled(rewards, redemption_id)["voucher_code"]

    used = rewards.post(f"/v1/vouchers/{code.lower()}/use", json={"store_id": "store-7"})
    assert used.status_code == 200 and used.json()["status"] == "used" and used.json()["store_id"] == "store-7"
    again = rewards.post(f"/v1/vouchers/{code}/use", json={"store_id": "store-8"})
    assert again.status_code == 409 and again.json()["type"] == "/problems/voucher-already-used"
    voucher = rewards.get(f"/v1/vouchers/{code}").json()
    assert voucher["status"] == "used" and voucher["used_at"] and voucher["store_id"] == "store-7"
    no_cancel = rewards.post(f"/v1/redemptions/{redemption_id}/cancel")
    assert no_cancel.status_code == 409 and no_cancel.json()["type"] == "/problems/voucher-already-used"
    assert available(points, member) == 0


# --- contention ------------------------------------------------------------------------------------


def test_twenty_members_race_for_three_units(system: System, points: httpx.Client, rewards: httpx.Client) -> None:
    reward = new_reward(rewards, cost=100, stock=3)
    members = [unique(f"racer{i:02d}") for i in range(20)]
    for member in members:
        enroll(points, member, with_points=150)
    bodies = [{"redemption_id": f"{m}-r", "member_id": m, "reward_id": reward, "quantity": 1} for m in members]
    clients = [system.client("rewards") for _ in members]
    try:
        answers = at_once([partial(c.post, "/v1/redemptions", json=b) for c, b in zip(clients, bodies, strict=True)])
    finally:
        for client in clients:
            client.close()

    accepted = [b["member_id"] for b, a in zip(bodies, answers, strict=True) if a.status_code == 202]
    refused = [a for a in answers if a.status_code != 202]
    assert len(accepted) == 3, [a.status_code for a in answers]
    assert {(a.status_code, a.json()["type"]) for a in refused} == {(409, "/problems/out-of-stock")}
    outcomes = {m: settled(rewards, f"{m}-r")["status"] for m in accepted}
    assert outcomes == dict.fromkeys(accepted, "confirmed")
    assert stock_left(rewards, reward) == 0
    for member in members:
        if member in accepted:
            assert available(points, member) == 50 and len(spends(points, member)) == 1, member
        else:
            assert available(points, member) == 150 and spends(points, member) == [], member
            assert rewards.get(f"/v1/members/{member}/redemptions").json()["items"] == []


def test_two_tills_using_one_voucher_at_once(system: System, points: httpx.Client, rewards: httpx.Client) -> None:
    member, reward = unique("eve"), new_reward(rewards, stock=None)
    enroll(points, member, with_points=300)
    codes = [settled(rewards, redeem(rewards, member, reward))["voucher_code"] for _ in range(3)]
    for code in codes:
        tills = [system.client("rewards"), system.client("rewards")]
        try:
            answers = at_once([partial(till.post, f"/v1/vouchers/{code}/use", json={"store_id": store})
                               for till, store in zip(tills, ["store-1", "store-2"], strict=True)])
        finally:
            for till in tills:
                till.close()
        assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
        [winner] = [a.json() for a in answers if a.status_code == 200]
        [loser] = [a.json() for a in answers if a.status_code == 409]
        assert loser["type"] == "/problems/voucher-already-used"
        assert rewards.get(f"/v1/vouchers/{code}").json()["store_id"] == winner["store_id"]
