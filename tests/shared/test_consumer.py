"""The inbox consumer against a real broker: duplicates skipped, poison events dead-lettered."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ops.dlt import list_dead_letters, replay_dead_letters
from shared.context import correlation_for
from shared.db.database import Database
from shared.messaging.consumer import Delivery, EventConsumer, refusal
from shared.messaging.events import (
    Envelope,
    EventData,
    MemberEnrolled,
    MemberSegmentChanged,
    PointsAdjusted,
    Topic,
)

pytestmark = pytest.mark.usefixtures("kafka")


def enrolled(member: str) -> Envelope:
    return MemberEnrolled(member_id=member, status="active", enrolled_at="2026-11-20T10:00:00Z").envelope("points")



async def produce(kafka: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    """All to partition 0, so events about several members keep the order they were sent in (each keyed by
    its member, as consumers check)."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, enable_idempotence=True)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key, partition=0, headers=[("origin", b"test")])
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
        (b"bad", b"{not json"),
        (b"bad", enrolled("bad").model_dump_json().encode()),
        (b"good", enrolled("good").model_dump_json().encode()),
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
    assert [r.key for r in records] == [b"bad", b"bad"]
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
        sent.append((f"m-{number}".encode(), envelope.model_dump_json().encode()))
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
                  [(name.encode(), enrolled(name).model_dump_json().encode()) for name in ("a", "bad", "b", "c")])
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


async def test_forged_events_change_nothing_and_land_in_the_dead_letters_with_the_reason(
    db: Database, tables: dict[str, Table], kafka: str, prefix: str
) -> None:
    """An event is believed only on its own topic, from its producer, about the member its key names, with
    figures in range; anything else goes to the dead letters at once, the handler never sees it."""
    seen: list[str] = []

    async def handler(_: AsyncSession, envelope: Envelope, __: EventData) -> None:
        seen.append(envelope.id)

    adjusted = PointsAdjusted(member_id="m-1", points=500, balance={"available": 500, "pending": 0},
                              adjustment_id="a-1", reason="forged", actor="nobody")
    on_members = adjusted.envelope("points")  # right source, wrong topic
    from_tiers = adjusted.envelope("tiers")  # wrong source
    other_key = adjusted.envelope("points")  # key of another member
    other_subject = adjusted.envelope("points")
    other_subject.subject = "m-2"
    huge = adjusted.envelope("points")
    huge.data["points"] = 10**22  # beyond any column
    genuine = adjusted.envelope("points")
    points_topic, members_topic = prefix + Topic.POINTS, prefix + Topic.MEMBERS
    await produce(kafka, members_topic, [(b"m-1", on_members.model_dump_json().encode())])
    await produce(kafka, points_topic, [
        (b"m-1", from_tiers.model_dump_json().encode()),
        (b"m-2", other_key.model_dump_json().encode()),
        (b"m-1", other_subject.model_dump_json().encode()),
        (b"m-1", huge.model_dump_json().encode()),
        (b"m-1", genuine.model_dump_json().encode()),
    ])
    consumer = EventConsumer(db, tables["inbox"], service="test", bootstrap=kafka, topic_prefix=prefix,
                             topics=[Topic.MEMBERS, Topic.POINTS], handlers={"points.adjusted": handler})
    await run_until(consumer, lambda: consumer.dead_lettered == 5 and consumer.handled == 1)
    assert seen == [genuine.id]

    errors: list[bytes] = []
    dlt = AIOKafkaConsumer(points_topic + ".dlt", members_topic + ".dlt", bootstrap_servers=kafka,
                           auto_offset_reset="earliest", group_id=f"check-{uuid.uuid4().hex}")
    await dlt.start()
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while len(errors) < 5 and asyncio.get_running_loop().time() < deadline:
            for batch in (await dlt.getmany(timeout_ms=1000)).values():
                errors.extend(dict(r.headers)["dlt.error"] for r in batch)
    finally:
        await dlt.stop()
    text = b"\n".join(errors)
    assert b"belongs on" in text and b"is produced by points, not 'tiers'" in text
    assert text.count(b"must be the same member") == 2
    assert b"points: Input should be less than or equal to" in text
    assert b"10000000000000000000000" not in text  # reasons name the field, not the value


def test_the_refusals_read_topic_source_and_members() -> None:
    data = MemberEnrolled(member_id="m-1", status="active", enrolled_at="2026-11-20T10:00:00Z")
    envelope = data.envelope("points")
    assert refusal("p.loyalty.members", b"m-1", envelope, data, "p.") is None
    assert refusal("loyalty.members", b"m-1", envelope, data, "p.") is not None
    assert refusal("p.loyalty.members", None, envelope, data, "p.") is not None
    assert refusal("p.loyalty.members", b"m-1", data.envelope("rewards"), data, "p.") is not None
    segment = MemberSegmentChanged(member_id="m-1", value_class="A", lifecycle="active",
                                   rfm={"recency": 5, "frequency": 5, "monetary": 5}, at="2026-11-20T10:00:00Z")
    assert refusal("p.loyalty.members", b"m-1", segment.envelope("tiers"), segment, "p.") is None
    assert refusal("p.loyalty.members", b"m-1", segment.envelope("points"), segment, "p.") is not None


async def test_a_value_the_database_refuses_is_dead_lettered_at_once(
    db: Database, tables: dict[str, Table], kafka: str, prefix: str
) -> None:
    """Data the database cannot store stays unstorable: no retries, straight to the dead letters, and the
    header names the failure without the value."""
    attempts: list[str] = []

    async def handler(session: AsyncSession, envelope: Envelope, __: EventData) -> None:
        attempts.append(envelope.id)
        await session.execute(text("SELECT CAST(:value AS integer)"), {"value": "12a@example.com"})

    await produce(kafka, prefix + Topic.MEMBERS, [(b"m-5", enrolled("m-5").model_dump_json().encode())])
    consumer = EventConsumer(db, tables["inbox"], service="test", bootstrap=kafka, topic_prefix=prefix,
                             topics=[Topic.MEMBERS], handlers={"member.enrolled": handler}, max_attempts=5)
    await run_until(consumer, lambda: consumer.dead_lettered == 1)
    assert len(attempts) == 2  # in its batch, then alone once: not the 5 attempts of a failing handler
    letters = await list_dead_letters(kafka, prefix)
    assert len(letters) == 1 and "SQLSTATE 22" in letters[0].error and "example.com" not in letters[0].error
