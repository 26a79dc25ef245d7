"""A batch of purchases (the consumer catching up) leaves exactly what its events leave one at a time: the
tiers, the history, the announcements, the lifecycles and the stored facts. Against PostgreSQL, and once on
SQLite (the zero-setup default)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord
from fastapi import FastAPI
from sqlalchemy import select

from services.tiers import consumers
from services.tiers.models import Member, Purchase, inbox
from services.tiers.service import members, points, purchases, segmentation
from shared.messaging import events
from shared.messaging.consumer import EventConsumer
from shared.messaging.kafka import all_topic_names, delete_topics, ensure_topics, topic_name
from tests.support import deliver, outbox_events, service_client
from tests.tiers.builders import enrolled, points_earned, program, purchase, refund
from tests.tiers.snapshots import standing


@pytest.fixture(autouse=True)
async def ladder(client: httpx.AsyncClient) -> None:
    assert (await client.put("/v1/tiers", json=program())).status_code == 200


def story(prefix: str) -> list[events.PurchaseRecorded]:
    """Purchases of three members, with every case the replay must get right (``prefix`` keeps two runs
    of the story apart in one database)."""
    one, two, new = f"{prefix}1", f"{prefix}2", f"{prefix}3"
    return [
        purchase(f"{prefix}p-1", one, "600.00"),  # bronze -> silver
        purchase(f"{prefix}p-2", two, "50.00"),
        purchase(f"{prefix}p-3", one, "500.00"),  # refunded 150 before it was told: counts 350, stays silver
        purchase(f"{prefix}p-4", one, "100.00"),  # 1050: silver -> gold
        purchase(f"{prefix}p-1", one, "600.00"),  # told again: counts once
        purchase(f"{prefix}p-5", new, "2000.00"),  # a member not known yet: enrolled, then gold
        purchase(f"{prefix}p-2", one, "900.00"),  # someone else's purchase: ignored
        purchase(f"{prefix}p-6", two, "700.00", days_ago=400),  # outside the window: no silver
        purchase(f"{prefix}p-4", one, "10.00"),  # told again, lower: 960, gold kept (retention)
        purchase(f"{prefix}p-7", two, "20.00", days_ago=0),  # a lapsed member is won back
        purchase(f"{prefix}p-8", new, "1.00"),
    ]


async def prepare(app: FastAPI, prefix: str) -> None:
    """Members known before the story, a refund told before its purchase, and a segmentation run (so the
    purchases move lifecycles too)."""
    await deliver(app, enrolled(f"{prefix}1", days_ago=400))
    await deliver(app, enrolled(f"{prefix}2", days_ago=400))
    await deliver(app, purchase(f"{prefix}p-0", f"{prefix}2", "5.00", days_ago=300))
    await deliver(app, refund(f"{prefix}r-1", f"{prefix}p-3", f"{prefix}1", "150.00"))


async def outcome(app: FastAPI, client: httpx.AsyncClient, prefix: str) -> dict[str, Any]:
    """What the story left, with the prefix taken out so that two runs compare."""
    members: dict[str, Any] = {}
    for n in "123":
        member_id = f"{prefix}{n}"
        members[n] = {
            **await standing(app, client, member_id),
            "lifecycles": [(e["data"]["previous_lifecycle"], e["data"]["lifecycle"])
                           for e in await outbox_events(app, "member.segment_changed")
                           if e["subject"] == member_id],
        }
    async with app.state.db.read() as session:
        stored = (await session.execute(select(Purchase).where(Purchase.purchase_id.startswith(prefix))
                                        .order_by(Purchase.purchase_id))).scalars()
        purchases = [(p.purchase_id.removeprefix(prefix), p.member_id.removeprefix(prefix), p.total, p.refunded)
                     for p in stored]
    return {"members": members, "purchases": purchases}


async def tell_the_story_twice(app: FastAPI, client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """The story as one batch (members A-) and one event at a time (B-); what each left."""
    for prefix in ("A-", "B-"):
        await prepare(app, prefix)
    await segmentation.recompute_segments(app.state.db)
    async with app.state.db.transaction() as session:
        await purchases.record_purchases(session, story("A-"))
    for data in story("B-"):
        await deliver(app, data)
    return await outcome(app, client, "A-"), await outcome(app, client, "B-")


async def test_a_batch_leaves_what_its_events_one_at_a_time_leave(client: httpx.AsyncClient, app: FastAPI) -> None:
    batch, one_by_one = await tell_the_story_twice(app, client)
    assert batch == one_by_one
    members = batch["members"]
    assert members["1"]["history"] == [(None, "bronze", "enrolled"), ("bronze", "silver", "upgrade"),
                                       ("silver", "gold", "upgrade")]
    assert members["1"]["tier"] == ("gold", "960.00")
    assert members["2"]["tier"] == ("bronze", "75.00")
    assert members["2"]["lifecycles"][-1] == ("lapsed", "won_back")
    assert members["3"]["history"] == [(None, "bronze", "enrolled"), ("bronze", "gold", "upgrade")]
    assert members["1"]["announced"] == members["1"]["history"]
    assert ("p-2", "2", 50, 0) in batch["purchases"] and ("p-3", "1", 500, 150) in batch["purchases"]


async def test_objects_the_session_held_are_read_again_after_a_batch(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The batch writes rows without the ORM; an event after it in the same transaction (a consumer's
    batch of mixed types) must see the member it upgraded, not the copy the session loaded before."""
    async with app.state.db.transaction() as session:
        await members.record_member(session, enrolled("C-9"))
        held = await session.get(Member, "C-9")  # as a caller of several use cases might
        await purchases.record_purchases(session, [purchase("p-9", "C-9", "600.00")])
        await points.record_points_earned(session, points_earned("p-9", "C-9", 600))
        assert held is not None and held.tier_id == "silver"
    history = (await client.get("/v1/members/C-9/tier/history")).json()["items"]
    assert [(h["from_tier"], h["to_tier"]) for h in reversed(history)] == [(None, "bronze"), ("bronze", "silver")]


async def test_a_poison_purchase_in_a_batch_fails_alone(client: httpx.AsyncClient, app: FastAPI, kafka: str) -> None:
    """A purchase the database refuses fails the whole batch; handled again one by one, the others take
    effect in their order and only it is dead-lettered."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    await ensure_topics(kafka, all_topic_names(prefix), partitions=1)
    consumer = EventConsumer(app.state.db, inbox, service="tiers", bootstrap=kafka, topic_prefix=prefix, topics=[],
                             handlers=consumers.HANDLERS, batch_handlers=consumers.BATCH_HANDLERS, max_attempts=2)
    poison = purchase("p-2", "C-2", "5.00")
    poison.currency = "DOLLARS"  # longer than the column
    told = [purchase("p-1", "C-1", "600.00"), poison, purchase("p-3", "C-1", "500.00")]
    topic = topic_name(prefix, events.Topic.PURCHASES.value)
    try:
        await consumer._handle_batch([
            ConsumerRecord(topic, 0, offset, 0, 0, data.member_id.encode(),
                           data.envelope("points").model_dump_json().encode(), None, 1, 1, [])
            for offset, data in enumerate(told)])
    finally:
        await consumer.stop()
        await delete_topics(kafka, all_topic_names(prefix))
    assert (consumer.handled, consumer.dead_lettered) == (2, 1)
    history = (await client.get("/v1/members/C-1/tier/history")).json()["items"]
    assert [(h["from_tier"], h["to_tier"]) for h in reversed(history)] == [
        (None, "bronze"), ("bronze", "silver"), ("silver", "gold")]
    assert (await client.get("/v1/members/C-2/tier")).status_code == 404


async def test_a_batch_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tiers.db'}"
    from services.tiers.models import Base
    from shared.db.database import Database

    database = Database(url)
    async with database.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    await database.dispose()
    async with service_client("tiers", database_url=url) as (app, client):
        assert (await client.put("/v1/tiers", json=program())).status_code == 200
        batch, one_by_one = await tell_the_story_twice(app, client)
        assert batch == one_by_one
        assert batch["members"]["1"]["tier"] == ("gold", "960.00")
