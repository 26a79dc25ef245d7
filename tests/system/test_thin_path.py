"""The thin path through all three services as real processes, real Kafka and real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.system.harness import System, eventually

pytestmark = pytest.mark.system

TIERS = {
    "basis": "spend", "window_days": 365, "retention_days": 365,
    "tiers": [
        {"tier_id": "bronze", "name": "Bronze", "threshold": "0", "earn_multiplier": "1", "perks": []},
        {"tier_id": "silver", "name": "Silver", "threshold": "500", "earn_multiplier": "1.5", "perks": []},
    ],
}


NOW = datetime.now(UTC).replace(microsecond=0)


def purchase(pid: str, member: str, total: str) -> dict[str, Any]:
    """A purchase of an hour ago: inside the tiers' rolling window whenever the test runs."""
    return {"purchase_id": pid, "member_id": member, "store_id": "store-1", "channel": "pos",
            "occurred_at": (NOW - timedelta(hours=1)).isoformat(), "currency": "USD", "total": total}


def settle(rewards: httpx.Client, redemption_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def settled() -> bool:
        found.update(rewards.get(f"/v1/redemptions/{redemption_id}", params={"wait": 5}).json())
        return found["status"] != "pending"

    eventually(settled, f"redemption {redemption_id} settles")
    return found


def test_purchase_tier_and_redemption_across_services(system: System) -> None:
    points, rewards, tiers = system.client("points"), system.client("rewards"), system.client("tiers")
    assert points.put("/v1/program", json={"currency": "USD", "points_per_unit": "1", "expiry_days": 365,
                                           "pending_days": 0, "excluded_categories": []}).status_code == 200
    assert tiers.put("/v1/tiers", json=TIERS).status_code == 200
    assert rewards.put("/v1/rewards/cup", json={"name": "Cup", "points_cost": 100, "stock": 5,
                                                "per_member_limit": None, "active": True}).status_code == 201

    assert points.put("/v1/members/ada", json={"name": "Ada"}).status_code == 201
    first = points.post("/v1/purchases", json=purchase("ada-1", "ada", "120.00"))
    assert first.status_code == 201 and first.json()["points_earned"] == 120
    assert points.get("/v1/members/ada/balance").json()["available"] == 120

    # a POS retry of the same receipt is credited once
    retry = points.post("/v1/purchases", json=purchase("ada-1", "ada", "120.00"))
    assert retry.status_code == 200 and retry.json() == first.json()
    assert points.get("/v1/members/ada/balance").json()["available"] == 120

    # crossing 500 of spend: tiers upgrades from the event, then points earns with the new multiplier
    assert points.post("/v1/purchases", json=purchase("ada-2", "ada", "400.00")).status_code == 201
    eventually(lambda: tiers.get("/v1/members/ada/tier").json().get("tier_id") == "silver", "tiers shows silver")
    eventually(lambda: points.get("/v1/members/ada").json()["tier"] == "silver", "points learns silver")
    third = points.post("/v1/purchases", json=purchase("ada-3", "ada", "100.00")).json()
    assert third["points_earned"] == 150
    assert points.get("/v1/members/ada/balance").json()["available"] == 670

    # a redemption paid through the saga: confirmed with a voucher, the points taken once
    accepted = rewards.post("/v1/redemptions", json={"redemption_id": "ada-r1", "member_id": "ada",
                                                     "reward_id": "cup", "quantity": 1})
    assert accepted.status_code == 202 and accepted.json()["status"] == "pending"
    done = settle(rewards, "ada-r1")
    assert done["status"] == "confirmed" and done["voucher_code"], done
    assert points.get("/v1/members/ada/balance").json()["available"] == 570
    assert rewards.get("/v1/rewards/cup").json()["stock_left"] == 4

    # a member without points is refused by points, and the reserved stock comes back
    assert points.put("/v1/members/bob", json={}).status_code == 201
    rewards.post("/v1/redemptions", json={"redemption_id": "bob-r1", "member_id": "bob", "reward_id": "cup",
                                          "quantity": 1}).raise_for_status()
    refused = settle(rewards, "bob-r1")
    assert refused["status"] == "rejected" and refused["reason"] == "insufficient-points", refused
    assert rewards.get("/v1/rewards/cup").json()["stock_left"] == 4
    assert points.get("/v1/members/bob/balance").json()["available"] == 0
