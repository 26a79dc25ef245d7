"""Business metrics in /metrics against the real apps on PostgreSQL: each committed fact moves its counter by
exactly its amount, once; replays, repeated answers and rolled-back transactions move nothing; the outbox
backlog gauges follow the unpublished rows and drop when a real broker took them.

Counters live in the process-wide registry, so every assertion compares /metrics before and after.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from services.points.service import OUTBOX as POINTS_OUTBOX
from services.rewards.jobs import reask_stale
from shared.clock import clock, utcnow
from shared.messaging import events
from shared.messaging.events import Envelope, parse_data
from shared.messaging.kafka import all_topic_names, delete_topics, ensure_topics
from shared.messaging.outbox import OutboxRelay
from shared.runtime import Runtime
from tests.points.builders import enroll, now_purchase, program
from tests.rewards.builders import put_reward, redeem
from tests.support import deliver, outbox_events, service_client

Sample = tuple[str, frozenset[tuple[str, str]]]


class Scrape:
    """One read of /metrics: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.samples: dict[Sample, float] = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> Scrape:
    answer = await client.get("/metrics")
    assert answer.status_code == 200, answer.text
    return Scrape(answer.text)


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    """How far a counter moved. Counters are floats that earlier tests of the process have added to, so the
    difference of two large totals is rounded (to the 4 decimals money is kept in) before it is compared."""
    return round(after.value(name, **labels) - before.value(name, **labels), 4)


@pytest.fixture
async def points(empty_db: Callable[[str], Awaitable[str]]) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    await empty_db("points")
    async with service_client("points") as pair:
        await pair[1].put("/v1/program", json=program())
        yield pair


@pytest.fixture
async def rewards(empty_db: Callable[[str], Awaitable[str]]) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    await empty_db("rewards")
    async with service_client("rewards") as pair:
        yield pair


async def pass_on(source: FastAPI, event_type: str, target: FastAPI, *, already: int = 0) -> list[str]:
    """Hands the events of ``event_type`` that ``source`` wrote (after the first ``already``) to ``target``'s
    consumer, as Kafka would; returns the outcomes."""
    envelopes = (await outbox_events(source, event_type))[already:]
    assert envelopes, f"no {event_type} in the outbox"
    return [await deliver(target, parse_data(Envelope.model_validate(e))) for e in envelopes]


# --- purchases and points ------------------------------------------------------------------------------


async def test_purchase_refund_and_enrolment_count_once(points: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = points
    before = await scrape(client)
    await enroll(client, "m-1")
    body = now_purchase("p-1", "m-1", "120.00")
    first = await client.post("/v1/purchases", json=body)
    assert first.status_code == 201, first.text
    earned = first.json()["points_earned"]
    assert earned > 0
    assert (await client.post("/v1/purchases", json=body)).status_code == 200  # a retry replays
    assert (await client.post("/v1/purchases", json={**body, "total": "99.00"})).status_code == 409
    assert (await client.post("/v1/purchases", json=now_purchase("p-2", "nobody", "5.00"))).status_code == 404
    refund = await client.post("/v1/purchases/p-1/refunds", json={
        "refund_id": "r-1", "amount": "30.00", "occurred_at": utcnow().isoformat()})
    assert refund.status_code == 201, refund.text
    reversed_points = refund.json()["points_reversed"]
    assert reversed_points > 0
    after = await scrape(client)

    assert moved(before, after, "loyalty_members_enrolled_total", service="points") == 1
    assert moved(before, after, "loyalty_purchases_total", service="points") == 1
    assert moved(before, after, "loyalty_purchase_amount_total", service="points", currency="USD") == 120
    assert moved(before, after, "loyalty_points_issued_total", service="points", kind="earn") == earned
    assert moved(before, after, "loyalty_refunds_total", service="points") == 1
    assert moved(before, after, "loyalty_refund_amount_total", service="points", currency="USD") == 30
    assert moved(before, after, "loyalty_points_reversed_total", service="points") == reversed_points


async def test_expiry_and_adjustments_count_their_points(points: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = points
    await client.put("/v1/program", json=program(expiry_days=30))
    await enroll(client, "m-1")
    earned = (await client.post("/v1/purchases", json=now_purchase("p-1", "m-1", "40.00"))).json()["points_earned"]
    before = await scrape(client)
    for adjustment_id, change in (("a-1", 15), ("a-2", -5)):
        answer = await client.post("/v1/members/m-1/adjustments", json={
            "adjustment_id": adjustment_id, "points": change, "reason": "goodwill"})
        assert answer.status_code == 201, answer.text
    clock.offset += timedelta(days=400)  # past every lot's expiry; reading the balance settles it
    try:
        assert (await client.get("/v1/members/m-1/balance")).json()["available"] == 0
    finally:
        clock.offset -= timedelta(days=400)
    after = await scrape(client)

    assert moved(before, after, "loyalty_points_adjusted_total", service="points", direction="credit") == 15
    assert moved(before, after, "loyalty_points_adjusted_total", service="points", direction="debit") == 5
    assert moved(before, after, "loyalty_points_expired_total", service="points") == earned + 15 - 5


async def test_rolled_back_transaction_counts_nothing(points: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = points
    runtime: Runtime = app.state.runtime
    before = await scrape(client)
    recorded = events.PurchaseRecorded(member_id="m-1", purchase_id="p-x", occurred_at=utcnow(), currency="USD",
                                       total=Decimal("50.00"), points_earned=50)
    with pytest.raises(RuntimeError, match="after the outbox"):
        async with runtime.db.transaction() as session:
            await POINTS_OUTBOX.add(session, recorded)
            raise RuntimeError("a failure after the outbox rows were written")
    after = await scrape(client)

    assert await outbox_events(app) == [], "the rows went with the transaction"
    assert moved(before, after, "loyalty_purchases_total", service="points") == 0
    assert moved(before, after, "loyalty_purchase_amount_total", service="points", currency="USD") == 0


# --- the redemption saga ---------------------------------------------------------------------------------


async def test_redemption_outcomes_and_points_count_once_through_repeats(
    points: tuple[FastAPI, httpx.AsyncClient], rewards: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    points_app, points_client = points
    rewards_app, rewards_client = rewards
    await enroll(points_client, "m-1")
    await points_client.post("/v1/purchases", json=now_purchase("p-1", "m-1", "150.00"))
    await put_reward(rewards_client, "cup", points_cost=100)
    before_points, before_rewards = await scrape(points_client), await scrape(rewards_client)

    # r-1 is paid and confirmed; points is asked again and answers again, which counts nothing more
    await redeem(rewards_client, "r-1", "m-1", "cup")
    assert await pass_on(rewards_app, "redemption.requested", points_app) == ["handled"]
    assert await pass_on(rewards_app, "redemption.requested", points_app) == ["handled"]  # a new event id
    assert await pass_on(points_app, "points.spent", rewards_app) == ["handled", "handled"]
    assert (await rewards_client.get("/v1/redemptions/r-1")).json()["status"] == "confirmed"

    # r-2 finds 50 points left: rewards asks again while waiting, points declines, rewards rejects
    await redeem(rewards_client, "r-2", "m-1", "cup")
    assert await reask_stale(rewards_app.state.runtime.db, now=utcnow() + timedelta(hours=1)) == 1
    assert await pass_on(rewards_app, "redemption.requested", points_app, already=1) == ["handled", "handled"]
    assert await pass_on(points_app, "points.spend_declined", rewards_app) == ["handled", "handled"]
    assert (await rewards_client.get("/v1/redemptions/r-2")).json()["status"] == "rejected"

    # r-1 is cancelled (twice: the second changes nothing) and points gives its points back
    for _ in range(2):
        assert (await rewards_client.post("/v1/redemptions/r-1/cancel")).status_code == 200
    assert await pass_on(rewards_app, "redemption.cancelled", points_app) == ["handled"]
    after_points, after_rewards = await scrape(points_client), await scrape(rewards_client)

    def redemptions(outcome: str) -> float:
        return moved(before_rewards, after_rewards, "loyalty_redemptions_total", service="rewards", outcome=outcome)

    assert [redemptions(o) for o in ("requested", "confirmed", "rejected", "cancelled")] == [2, 1, 1, 1]
    assert moved(before_points, after_points, "loyalty_points_spent_total", service="points") == 100
    assert moved(before_points, after_points, "loyalty_points_spend_declined_total", service="points",
                 reason="insufficient-points") == 1
    assert moved(before_points, after_points, "loyalty_points_refunded_total", service="points") == 100


# --- outbox backlog ------------------------------------------------------------------------------------------


async def test_backlog_gauges_follow_unpublished_rows(points: tuple[FastAPI, httpx.AsyncClient], kafka: str) -> None:
    app, client = points
    runtime: Runtime = app.state.runtime
    prefix = f"test-metrics-{uuid.uuid4().hex[:8]}."
    await ensure_topics(kafka, all_topic_names(prefix), 1)
    relay = OutboxRelay(runtime.db, runtime.spec.metadata.tables["outbox"], bootstrap=kafka, topic_prefix=prefix,
                        client_id="test-metrics-relay", service="points")
    try:
        await relay.refresh_backlog()
        empty = await scrape(client)
        assert empty.value("loyalty_outbox_backlog", service="points") == 0
        assert empty.value("loyalty_outbox_oldest_age_seconds", service="points") == 0

        await enroll(client, "m-1")
        await client.post("/v1/purchases", json=now_purchase("p-1", "m-1", "10.00"))
        waiting = len(await outbox_events(app))
        assert waiting >= 3  # member.enrolled, purchase.recorded, points.earned
        clock.offset += timedelta(minutes=10)
        try:
            await relay.refresh_backlog()
        finally:
            clock.offset -= timedelta(minutes=10)
        behind = await scrape(client)
        assert behind.value("loyalty_outbox_backlog", service="points") == waiting
        assert 600 <= behind.value("loyalty_outbox_oldest_age_seconds", service="points") < 3600

        assert await relay.publish_once() == waiting
        await relay.refresh_backlog()
        caught_up = await scrape(client)
        assert caught_up.value("loyalty_outbox_backlog", service="points") == 0
        assert caught_up.value("loyalty_outbox_oldest_age_seconds", service="points") == 0
        assert moved(empty, caught_up, "loyalty_events_published_total", service="points") == waiting
    finally:
        await relay.stop()
        await delete_topics(kafka, all_topic_names(prefix))
