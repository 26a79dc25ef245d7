"""Campaigns through the real services, Kafka and PostgreSQL: a win-back rule that starts to apply when tiers'
segmentation run tells points the member has lapsed, and a stamp card whose 10th coffee is settled by the
goals job into a free voucher issued by rewards."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.system.harness import System, eventually

pytestmark = pytest.mark.system

PROGRAM = {"currency": "USD", "points_per_unit": "1", "expiry_days": 3650, "pending_days": 0,
           "excluded_categories": []}
TIERS = {"basis": "spend", "window_days": 365, "retention_days": 365, "downgrade": "to_qualified",
         "tiers": [{"tier_id": "green", "name": "Green", "threshold": "0", "earn_multiplier": "1", "perks": []}]}


def at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def basket(member_id: str, total: str, moment: datetime, category: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"member_id": member_id, "store_id": "store-1", "channel": "pos",
                            "occurred_at": at(moment), "currency": "USD", "total": total}
    if category:
        body["lines"] = [{"sku": f"{category}-1", "category": category, "quantity": 1, "unit_price": total}]
    return body


def test_a_win_back_rule_starts_to_apply_when_the_segment_arrives(system: System) -> None:
    points, tiers = system.client("points"), system.client("tiers")
    assert points.put("/v1/program", json=PROGRAM).status_code == 200
    assert tiers.put("/v1/tiers", json=TIERS).status_code == 200
    rule = {"rule_id": "win-back", "kind": "multiplier", "factor": "3", "audience": {"lifecycles": ["lapsed"]}}
    assert points.post("/v1/earning-rules", json=rule).status_code == 201
    now = datetime.now(UTC)
    # Two purchases each (one alone makes a member enrolled this month "new"): the last 300 days ago, or 3.
    for member_id, last in (("lapsed-1", now - timedelta(days=300)), ("active-1", now - timedelta(days=3))):
        assert points.put(f"/v1/members/{member_id}", json={}).status_code == 201
        for n, moment in enumerate((last - timedelta(days=20), last)):
            bought = points.post("/v1/purchases", json={**basket(member_id, "20.00", moment),
                                                       "purchase_id": f"{member_id}-old-{n}"})
            assert bought.status_code == 201 and bought.json()["points_earned"] == 20, bought.text
    today = basket("lapsed-1", "10.00", now)
    assert points.post("/v1/quotes", json=today).json()["points_earned"] == 10  # not known as lapsed yet

    eventually(lambda: all(tiers.get(f"/v1/members/{m}/tier").status_code == 200 for m in ("lapsed-1", "active-1")),
               "tiers heard of the members")
    run = tiers.post("/v1/jobs/segments")
    assert run.status_code == 200, run.text
    eventually(lambda: [m["member_id"] for m in points.get("/v1/members", params={"lifecycle": "lapsed"})
                        .json()["items"]] == ["lapsed-1"], "points learned the lapsed member from Kafka")

    assert points.post("/v1/quotes", json=today).json()["points_earned"] == 30
    bought = points.post("/v1/purchases", json={**today, "purchase_id": "lapsed-1-back"})
    assert bought.status_code == 201, bought.text
    assert bought.json()["breakdown"] == [{"rule_id": "base", "points": 10}, {"rule_id": "win-back", "points": 20}]
    active = points.post("/v1/purchases", json={**basket("active-1", "10.00", now), "purchase_id": "active-1-new"})
    assert active.json()["points_earned"] == 10


def test_a_stamp_cards_tenth_coffee_yields_a_voucher_from_rewards(system: System) -> None:
    points, rewards = system.client("points"), system.client("rewards")
    assert points.put("/v1/program", json=PROGRAM).status_code == 200
    made = rewards.put("/v1/rewards/free-coffee", json={"name": "A coffee on us", "points_cost": 300, "stock": 5})
    assert made.status_code in (200, 201), made.text
    now = datetime.now(UTC)
    card = {"rule_id": "coffee-card", "kind": "goal", "metric": "purchases", "target": "10", "period": "rolling",
            "match": {"categories": ["coffee"]}, "reward": {"reward_id": "free-coffee"},
            "valid_from": at(now - timedelta(hours=1))}  # the card counts purchases from then on
    assert points.post("/v1/earning-rules", json=card).status_code == 201
    member_id = f"coffee-{uuid.uuid4().hex[:6]}"
    assert points.put(f"/v1/members/{member_id}", json={}).status_code == 201
    for n in range(10):
        bought = points.post("/v1/purchases", json={
            **basket(member_id, "3.00", now - timedelta(minutes=30 - n), "coffee"), "purchase_id": f"{member_id}-{n}"})
        assert bought.status_code == 201, bought.text
    settle = subprocess.run(
        [str(Path(sys.executable).parent / "loyalty"), "jobs", "settle-goals"], capture_output=True, text=True,
        env={**os.environ, "POINTS_DATABASE_URL": system["points"].env["POINTS_DATABASE_URL"]}, timeout=120)
    assert settle.returncode == 0 and "1 goals reached" in settle.stdout, settle.stdout + settle.stderr

    def voucher() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = rewards.get(f"/v1/members/{member_id}/redemptions").json()["items"]
        return [r for r in items if r["status"] == "confirmed" and r["voucher_code"]]

    eventually(voucher, "rewards issued the card's voucher")
    [redemption] = voucher()
    assert (redemption["reward_id"], redemption["points_cost"], redemption["source"]) == ("free-coffee", 0, "goal")
    assert rewards.get("/v1/rewards/free-coffee").json()["stock_left"] == 4
    assert points.get(f"/v1/members/{member_id}/balance").json()["available"] == 30  # the voucher cost nothing
    goals = points.get(f"/v1/members/{member_id}/goals").json()["goals"]
    assert [(g["period_key"], g["progress"], g["settled"]) for g in goals] == [("rolling-2", "0", ["rolling-1"])]
