"""The inbox consumer against a real broker: duplicates skipped, poison events dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ops.dlt import list_dead_letters, replay_dead_letters
from shared.context import correlation_for
from shared.db.database import Database
from shared.messaging.consumer import Delivery, EventConsumer
from shared.messaging.events import Envelope, EventData, MemberEnrolled, Topic
from shared.messaging.kafka import all_topic_names, delete_topics, ensure_topics

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


async def test_a_batch_goes_to_the_batch_handler_with_each_members_correlation_id(
    db: Database, tables: dict[str, Table], kafka: str, prefix: str
) -> None:
    """Consecutive events of a type with a batch handler arrive together; what the handler writes about a
    member carries that member's correlation id, not one id for the whole batch."""
    runs: list[list[str]] = []
    correlations: dict[str, str] = {}

    async def one(_: AsyncSession, envelope: Envelope, __: EventData) -> None:
        runs.append([envelope.subject])

    async def many(_: AsyncSession, batch: list[EventData]) -> None:
        runs.append([data.member_id for data in batch])
        correlations.update({data.member_id: correlation_for(data.member_id) for data in batch})

    sent = []
    for number in range(12):
        envelope = enrolled(f"m-{number}")
        envelope.correlation_id = f"request-{number}"
        sent.append((b"k", envelope.model_dump_json().encode()))  # one key: one partition, one order
    await produce(kafka, prefix + Topic.MEMBERS, sent)
    consumer = EventConsumer(db, tables["inbox"], service="test", bootstrap=kafka, topic_prefix=prefix,
                             topics=[Topic.MEMBERS], handlers={"member.enrolled": one},
                             batch_handlers={"member.enrolled": many})
    await run_until(consumer, lambda: consumer.handled == 12)
    assert [member for run in runs for member in run] == [f"m-{n}" for n in range(12)]  # once each, in order
    assert max(len(run) for run in runs) > 1
    assert all(correlations[f"m-{n}"] == f"request-{n}" for n in range(12) if f"m-{n}" in correlations)


async def test_a_failing_batch_is_handled_again_event_by_event(
    db: Database, tables: dict[str, Table], kafka: str, prefix: str
) -> None:
    """Nothing of a failed batch is kept; its events then take effect once each, one transaction each, and
    only the event that fails alone is dead-lettered."""
    effects: list[str] = []

    async def one(session: AsyncSession, envelope: Envelope, __: EventData) -> None:
        if envelope.subject == "bad":
            raise RuntimeError("handler bug")
        effects.append(envelope.subject)

    async def many(session: AsyncSession, batch: list[EventData]) -> None:
        raise RuntimeError("batch bug")

    await produce(kafka, prefix + Topic.MEMBERS,
                  [(b"k", enrolled(name).model_dump_json().encode()) for name in ("a", "bad", "b", "c")])
    consumer = EventConsumer(db, tables["inbox"], service="test", bootstrap=kafka, topic_prefix=prefix,
                             topics=[Topic.MEMBERS], handlers={"member.enrolled": one},
                             batch_handlers={"member.enrolled": many}, max_attempts=2)
    await run_until(consumer, lambda: consumer.handled == 3 and consumer.dead_lettered == 1)
    assert effects == ["a", "b", "c"]
    async with db.read() as session:
        assert (await session.execute(select(func.count()).select_from(tables["inbox"]))).scalar() == 3


async def test_an_event_told_twice_in_a_batch_or_handled_before_takes_effect_once(
    db: Database, tables: dict[str, Table]
) -> None:
    """The batch's one inbox statement claims each new id once: a copy later in the same batch and an event
    an earlier transaction handled are both duplicates."""
    seen: list[str] = []

    async def handler(_: AsyncSession, envelope: Envelope, __: EventData) -> None:
        seen.append(envelope.subject)

    consumer = EventConsumer(db, tables["inbox"], service="test", bootstrap="unused", topic_prefix="", topics=[],
                             handlers={"member.enrolled": handler})
    before, new, other = enrolled("m-1"), enrolled("m-2"), enrolled("m-3")
    data = MemberEnrolled.model_validate(before.data)
    assert await consumer.apply(before, data, handler) == "handled"

    def delivery(offset: int, envelope: Envelope) -> Delivery:
        record = ConsumerRecord("t", 0, offset, 0, 0, b"k", envelope.model_dump_json().encode(), None, 1, 1, [])
        return Delivery(record, envelope, MemberEnrolled.model_validate(envelope.data), handler)

    outcomes = await consumer.apply_batch([delivery(1, before), delivery(2, new), delivery(3, new),
                                           delivery(4, other)])
    assert outcomes == ["duplicate", "handled", "duplicate", "handled"]
    assert seen == ["m-1", "m-2", "m-3"]
    async with db.read() as session:
        assert (await session.execute(select(func.count()).select_from(tables["inbox"]))).scalar() == 3
