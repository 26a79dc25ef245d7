"""The inbox consumer against a real broker: duplicates skipped, poison events dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.consumer import EventConsumer
from shared.db import Database
from shared.dlt import list_dead_letters, replay_dead_letters
from shared.events import Envelope, EventData, MemberEnrolled, Topic
from shared.kafka import all_topic_names, delete_topics, ensure_topics

pytestmark = pytest.mark.usefixtures("kafka")


def enrolled(member: str) -> Envelope:
    return MemberEnrolled(member_id=member, status="active", enrolled_at="2026-11-20T10:00:00Z").envelope("test")


@pytest.fixture
async def prefix(kafka: str) -> AsyncIterator[str]:
    name = f"t{uuid.uuid4().hex[:8]}."
    await ensure_topics(kafka, all_topic_names(name), partitions=3)
    yield name
    await delete_topics(kafka, all_topic_names(name))


async def produce(kafka: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, enable_idempotence=True)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key, headers=[("origin", b"test")])
    finally:
        await producer.stop()


async def run_until(consumer: EventConsumer, done: object, timeout: float = 30) -> None:
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not done():  # type: ignore[operator]
            assert asyncio.get_running_loop().time() < deadline, "consumer did not get there in time"
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()


async def test_redelivered_event_takes_effect_once(
    db: Database, tables: dict[str, Table], kafka: str, prefix: str
) -> None:
    seen: list[str] = []

    async def handler(_: AsyncSession, envelope: Envelope, __: EventData) -> None:
        seen.append(envelope.subject)

    one, two = enrolled("m-1"), enrolled("m-2")
    topic = prefix + Topic.MEMBERS
    await produce(kafka, topic, [(b"m-1", one.model_dump_json().encode())] * 3
                  + [(b"m-2", two.model_dump_json().encode())])
    consumer = EventConsumer(db, tables["inbox"], service="test", bootstrap=kafka, topic_prefix=prefix,
                             topics=[Topic.MEMBERS], handlers={"member.enrolled": handler})
    await run_until(consumer, lambda: consumer.handled + consumer.duplicates == 4)
    assert sorted(seen) == ["m-1", "m-2"] and consumer.duplicates == 2
    async with db.read() as session:
        assert (await session.execute(select(func.count()).select_from(tables["inbox"]))).scalar() == 2


async def test_poison_events_go_to_the_dead_letter_topic_and_the_partition_moves_on(
    db: Database, tables: dict[str, Table], kafka: str, prefix: str
) -> None:
    handled: list[str] = []

    async def handler(_: AsyncSession, envelope: Envelope, __: EventData) -> None:
        if envelope.subject == "bad":
            raise RuntimeError("handler bug")
        handled.append(envelope.subject)

    topic = prefix + Topic.MEMBERS
    await produce(kafka, topic, [
        (b"k", b"{not json"),
        (b"k", enrolled("bad").model_dump_json().encode()),
        (b"k", enrolled("good").model_dump_json().encode()),
    ])
    consumer = EventConsumer(db, tables["inbox"], service="test", bootstrap=kafka, topic_prefix=prefix,
                             topics=[Topic.MEMBERS], handlers={"member.enrolled": handler}, max_attempts=3)
    await run_until(consumer, lambda: handled == ["good"] and consumer.dead_lettered == 2)

    dlt = AIOKafkaConsumer(topic + ".dlt", bootstrap_servers=kafka, auto_offset_reset="earliest",
                           group_id=f"check-{uuid.uuid4().hex}")
    await dlt.start()
    try:
        batches = await dlt.getmany(timeout_ms=10000)
        records = sorted((r for batch in batches.values() for r in batch), key=lambda r: r.offset)
    finally:
        await dlt.stop()
    assert records[0].value == b"{not json"
    headers = [dict(r.headers) for r in records]
    assert all(r.key == b"k" for r in records)
    assert headers[0]["origin"] == b"test" and headers[0]["dlt.original_topic"] == topic.encode()
    assert b"RuntimeError: handler bug" in headers[1]["dlt.error"] and headers[1]["dlt.attempts"] == b"3"


async def test_dead_letters_are_listed_and_replayed_once_fixed(
    db: Database, tables: dict[str, Table], kafka: str, prefix: str
) -> None:
    broken = True
    handled: list[str] = []

    async def handler(_: AsyncSession, envelope: Envelope, __: EventData) -> None:
        if broken:
            raise RuntimeError("not yet")
        handled.append(envelope.subject)

    topic = prefix + Topic.MEMBERS
    await produce(kafka, topic, [(b"m-9", enrolled("m-9").model_dump_json().encode())])
    consumer = EventConsumer(db, tables["inbox"], service="test", bootstrap=kafka, topic_prefix=prefix,
                             topics=[Topic.MEMBERS], handlers={"member.enrolled": handler}, max_attempts=2)
    await run_until(consumer, lambda: consumer.dead_lettered == 1)
    letters = await list_dead_letters(kafka, prefix)
    assert [(x.key, x.event_type, x.headers["dlt.original_topic"]) for x in letters] == [
        ("m-9", "member.enrolled", topic)]
    assert "not yet" in letters[0].error

    broken = False
    assert await replay_dead_letters(kafka, prefix) == 1
    assert await replay_dead_letters(kafka, prefix, timeout=3) == 0, "each dead letter is replayed once"
    again = EventConsumer(db, tables["inbox"], service="test", bootstrap=kafka, topic_prefix=prefix,
                          topics=[Topic.MEMBERS], handlers={"member.enrolled": handler})
    await run_until(again, lambda: handled == ["m-9"])
