"""What points believes of other services' events, through real Kafka: points owns the members, so an event
about one it never enrolled changes nothing and goes to the dead letters with the reason."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy import select

from ops.dlt import list_dead_letters
from services.points.models import Member
from shared.messaging import events
from shared.messaging.consumer import EventConsumer
from shared.messaging.events import Topic
from shared.runtime import Runtime

pytestmark = pytest.mark.usefixtures("kafka")



def tier_changed(member_id: str) -> events.TierChanged:
    return events.TierChanged(member_id=member_id, from_tier="bronze", to_tier="silver", rank=1,
                              earn_multiplier="1.5", reason="upgrade", at="2026-11-20T10:00:00Z")


async def test_a_tier_change_about_a_member_never_enrolled_is_dead_lettered(
    client: httpx.AsyncClient, app: FastAPI, kafka: str, prefix: str
) -> None:
    await client.put("/v1/members/C-1", json={"name": "Ada"})
    producer = AIOKafkaProducer(bootstrap_servers=kafka, enable_idempotence=True)
    await producer.start()
    try:
        for member_id in ("ghost", "C-1"):
            envelope = tier_changed(member_id).envelope("tiers")
            await producer.send_and_wait(prefix + Topic.TIERS, value=envelope.model_dump_json().encode(),
                                         key=member_id.encode())
    finally:
        await producer.stop()
    runtime: Runtime = app.state.runtime
    spec = runtime.spec
    consumer = EventConsumer(runtime.db, spec.metadata.tables["inbox"], service="points", bootstrap=kafka,
                             topic_prefix=prefix, topics=[Topic.TIERS], handlers=spec.handlers, max_attempts=5)
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not (consumer.handled == 1 and consumer.dead_lettered == 1):
            assert asyncio.get_running_loop().time() < deadline, "the consumer did not get there in time"
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()
    async with runtime.db.read() as session:
        members = {m.member_id: m.tier_id for m in (await session.execute(select(Member))).scalars()}
    assert members == {"C-1": "silver"}  # no phantom "ghost"
    letters = await list_dead_letters(kafka, prefix)
    assert [(letter.key, letter.event_type) for letter in letters] == [("ghost", "tier.changed")]
    assert "never enrolled" in letters[0].error and letters[0].headers["dlt.attempts"] == "1"
