"""Request bodies, the events points and tiers would send, and small steps for rewards tests."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from services.rewards.models import Member
from shared.clock import utcnow
from shared.messaging import events
from shared.messaging.consumer import Delivery, EventConsumer
from tests.support import deliver

LADDER = ["bronze", "silver", "gold"]
VOUCHER_CODE = re.compile(r"^[2-9A-HJ-NP-Z]{5}-[2-9A-HJ-NP-Z]{5}-[2-9A-HJ-NP-Z]{5}$")


def reward(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Coffee cup", "points_cost": 100, "stock": None, "per_member_limit": None,
                            "min_tier": None, "active": True}
    body.update(overrides)
    return body


def redemption(redemption_id: str, member_id: str, reward_id: str, quantity: int = 1) -> dict[str, Any]:
    return {"redemption_id": redemption_id, "member_id": member_id, "reward_id": reward_id, "quantity": quantity}


async def put_reward(client: httpx.AsyncClient, reward_id: str, **overrides: Any) -> dict[str, Any]:
    answer = await client.put(f"/v1/rewards/{reward_id}", json=reward(**overrides))
    assert answer.status_code in (200, 201), answer.text
    body: dict[str, Any] = answer.json()
    return body


async def redeem(client: httpx.AsyncClient, redemption_id: str, member_id: str, reward_id: str,
                 quantity: int = 1) -> dict[str, Any]:
    """A redemption that must be accepted (202, pending)."""
    answer = await client.post("/v1/redemptions", json=redemption(redemption_id, member_id, reward_id, quantity))
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def stock_left(client: httpx.AsyncClient, reward_id: str) -> int | None:
    left: int | None = (await client.get(f"/v1/rewards/{reward_id}")).json()["stock_left"]
    return left


def spent(redemption_id: str, member_id: str, points: int, available: int = 0) -> events.PointsSpent:
    return events.PointsSpent(member_id=member_id, redemption_id=redemption_id, points=points,
                              balance=events.BalanceSnapshot(available=available, pending=0))


def declined(redemption_id: str, member_id: str, points: int, reason: str = "insufficient-points"
             ) -> events.PointsSpendDeclined:
    return events.PointsSpendDeclined(member_id=member_id, redemption_id=redemption_id, points=points,
                                      reason=reason)


def earned(member_id: str, available: int) -> events.PointsEarned:
    return events.PointsEarned(member_id=member_id, points=available,
                               balance=events.BalanceSnapshot(available=available, pending=0))


def held(hold_id: str, member_id: str, points: int, available: int, *, in_holds: int | None = None
         ) -> events.PointsHeld:
    """A checkout's hold of ``points``, leaving ``available`` and ``in_holds`` held (by default: only these)."""
    return events.PointsHeld(member_id=member_id, hold_id=hold_id, points=points, expires_at=utcnow() + timedelta(
        minutes=15), balance=events.BalanceSnapshot(available=available, pending=0,
                                                    held=points if in_holds is None else in_holds))


def released(hold_id: str, member_id: str, points: int, available: int, *, in_holds: int = 0,
             reason: str = "voided") -> events.PointsReleased:
    """A hold's points given back, leaving ``available`` and ``in_holds`` held by other holds."""
    return events.PointsReleased(member_id=member_id, hold_id=hold_id, points=points, reason=reason,
                                 balance=events.BalanceSnapshot(available=available, pending=0, held=in_holds))


def captured(hold_id: str, member_id: str, points: int, available: int) -> events.PointsSpent:
    """A checkout's capture: a points.spent with the hold's id and no redemption's."""
    return events.PointsSpent(member_id=member_id, hold_id=hold_id, points=points,
                              balance=events.BalanceSnapshot(available=available, pending=0))


def refunded_to_checkout(hold_id: str, member_id: str, points: int, available: int) -> events.PointsRefunded:
    """The points-paid share of a refunded purchase given back: a points.refunded with the hold's id."""
    return events.PointsRefunded(member_id=member_id, hold_id=hold_id, purchase_id="p-1", refund_id="rf-1",
                                 points=points, balance=events.BalanceSnapshot(available=available, pending=0))


def goal_reached(goal_id: str, member_id: str, reward_id: str | None = "cup", *, points: int = 0
                 ) -> events.GoalReached:
    """Points' settlement of a stamp card (10 purchases) giving the catalog reward ``reward_id`` (or points)."""
    return events.GoalReached(member_id=member_id, goal_id=goal_id, rule_id="coffee-card", period="rolling-1",
                              metric="purchases", progress="10", target="10", points=points, reward_id=reward_id)


def tier_changed(member_id: str, to_tier: str, ladder: list[str] | None = None, *,
                 at: str = "2026-11-20T10:00:00Z") -> events.TierChanged:
    ladder = LADDER if ladder is None else ladder
    return events.TierChanged(member_id=member_id, from_tier=None, to_tier=to_tier,
                              rank=ladder.index(to_tier) if to_tier in ladder else 0, ladder=ladder,
                              earn_multiplier="1", reason="upgrade", at=at)


async def settle(app: FastAPI, client: httpx.AsyncClient, redemption_id: str, *, paid: bool = True,
                 available: int = 0) -> dict[str, Any]:
    """Points' answer to a pending redemption, delivered through the inbox; returns the redemption after it."""
    body = (await client.get(f"/v1/redemptions/{redemption_id}")).json()
    event = (spent(redemption_id, body["member_id"], body["points_cost"], available) if paid
             else declined(redemption_id, body["member_id"], body["points_cost"]))
    assert await deliver(app, event) == "handled"
    after: dict[str, Any] = (await client.get(f"/v1/redemptions/{redemption_id}")).json()
    return after


async def deliver_batch(app: FastAPI, *batch: events.EventData) -> list[str]:
    """Hand events to the service's consumer as one Kafka batch (its batch handlers), through the inbox."""
    runtime = app.state.runtime
    spec = runtime.spec
    consumer = EventConsumer(runtime.db, spec.metadata.tables["inbox"], service=spec.name, bootstrap="unused",
                             topic_prefix="", topics=[], handlers=spec.handlers, batch_handlers=spec.batch_handlers)
    deliveries = [Delivery(cast(Any, SimpleNamespace()), data.envelope("test"), data, spec.handlers[data.TYPE])
                  for data in batch]
    outcomes: list[str] = await consumer.apply_batch(deliveries)
    return outcomes


async def available(app: FastAPI, member_id: str) -> int | None:
    """The available points rewards keeps for the member; None when it has heard nothing of them."""
    async with app.state.runtime.db.read() as session:
        member = (await session.execute(select(Member).where(Member.member_id == member_id))).scalar_one_or_none()
        return None if member is None else member.available
