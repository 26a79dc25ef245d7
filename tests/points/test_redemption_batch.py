"""Redemptions are paid a consumer batch at a time (``redemptions.pay_redemptions``); the consumer falls back to one
event at a time when a batch fails, so both must leave the same ledger, balances, answers and decisions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from services.points.models import RedemptionDebit
from services.points.service import redemptions
from shared.clock import clock
from shared.messaging import events
from tests.points.builders import buy, enroll, program
from tests.points.ledger_checks import assert_balanced
from tests.support import deliver, outbox_events, service_client

MEMBERS = ("m-1", "m-2", "m-4")


def asked(member_id: str, redemption_id: str, points: int) -> events.RedemptionRequested:
    return events.RedemptionRequested(member_id=member_id, redemption_id=redemption_id, reward_id="cup",
                                      points_cost=points)


# In order: paid; too few points; no such member; the first asked again; a member whose only lot expired
# (settled first, then too few); paid from what is left; then too few.
BATCH = [
    asked("m-1", "x-1", 30), asked("m-2", "x-2", 50), asked("zz", "x-3", 5), asked("m-1", "x-1", 30),
    asked("m-4", "x-4", 10), asked("m-1", "x-5", 60), asked("m-1", "x-6", 100),
]


Pay = Callable[[FastAPI, list[events.RedemptionRequested]], Awaitable[None]]


async def outcome(empty_db: Callable[[str], Awaitable[str]], pay: Pay) -> dict[str, Any]:
    await empty_db("points")
    clock.offset = timedelta(0)
    try:
        async with service_client("points") as (app, client):
            await client.put("/v1/program", json=program(expiry_days=30))
            for member_id in MEMBERS:
                await enroll(client, member_id)
            await buy(client, "p-4", "m-4", "40.00")
            clock.offset = timedelta(days=31)  # m-4's lot is now past its date, and nothing has settled it
            await buy(client, "p-1", "m-1", "100.00")
            await buy(client, "p-2", "m-2", "10.00")
            await pay(app, BATCH)
            for member_id in MEMBERS:
                await assert_balanced(app, member_id)
            async with app.state.runtime.db.read() as session:
                debits = [(d.redemption_id, d.member_id, d.outcome, d.reason) for d in (await session.execute(
                    select(RedemptionDebit).order_by(RedemptionDebit.redemption_id))).scalars()]
            # Events are ordered per member (the Kafka key), not across members.
            answers: dict[str, list[tuple[str, Any]]] = {}
            for e in await outbox_events(app):
                if e["type"] in {"points.spent", "points.spend_declined", "points.expired"}:
                    answers.setdefault(e["data"]["member_id"], []).append((e["type"], e["data"]))
            return {
                "debits": debits,
                "answers": answers,
                "ledgers": {m: [(e["kind"], e["points"], e["balance_after"]) for e in
                                (await client.get(f"/v1/members/{m}/ledger")).json()["items"]] for m in MEMBERS},
            }
    finally:
        clock.offset = timedelta(0)


async def one_by_one(app: FastAPI, batch: list[events.RedemptionRequested]) -> None:
    for data in batch:
        await deliver(app, data)


async def as_one_batch(app: FastAPI, batch: list[events.RedemptionRequested]) -> None:
    async with app.state.runtime.db.transaction() as session:
        await redemptions.pay_redemptions(session, batch)


async def test_a_batch_of_redemptions_is_paid_as_one_by_one(empty_db: Callable[[str], Awaitable[str]]) -> None:
    alone = await outcome(empty_db, one_by_one)
    together = await outcome(empty_db, as_one_batch)
    assert together == alone
    assert alone["debits"] == [
        ("x-1", "m-1", "spent", None), ("x-2", "m-2", "declined", "insufficient-points"),
        ("x-3", "zz", "declined", "member-not-found"), ("x-4", "m-4", "declined", "insufficient-points"),
        ("x-5", "m-1", "spent", None), ("x-6", "m-1", "declined", "insufficient-points"),
    ]
    assert {m: [kind for kind, _ in answers] for m, answers in alone["answers"].items()} == {
        "m-1": ["points.spent", "points.spent", "points.spent", "points.spend_declined"],
        "m-2": ["points.spend_declined"], "zz": ["points.spend_declined"],
        "m-4": ["points.expired", "points.spend_declined"]}
    assert alone["ledgers"]["m-4"] == [("expire", -40, 0), ("earn", 40, 40)]
