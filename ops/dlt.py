"""Dead letters: list what consumers gave up on, and replay it to its topic once the cause is fixed.

Replaying goes through a consumer group of its own, so each dead letter is replayed once however often the
command runs; the consumers' inbox makes a replay of something already handled harmless anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.messaging.kafka import DLT_SUFFIX, PLAINTEXT, KafkaSecurity, all_topic_names

REPLAY_GROUP = "loyalty-dlt-replay"


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: str | None
    event_type: str | None
    headers: dict[str, str]

    @property
    def error(self) -> str:
        return self.headers.get("dlt.error", "")


def _describe(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    try:
        event_type = json.loads(record.value or b"").get("type")
    except (ValueError, AttributeError):
        event_type = None
    return DeadLetter(
        topic=record.topic, partition=record.partition, offset=record.offset,
        key=record.key.decode(errors="replace") if record.key else None, event_type=event_type,
        headers={k: v.decode(errors="replace") for k, v in (record.headers or ())},
    )


def dlt_topics(prefix: str) -> list[str]:
    return [name for name in all_topic_names(prefix) if name.endswith(DLT_SUFFIX)]


async def list_dead_letters(bootstrap: str, prefix: str, limit: int = 1000,
                            security: KafkaSecurity = PLAINTEXT) -> list[DeadLetter]:
    """Everything in the dead-letter topics, oldest first per partition (read without a group)."""
    partitions = await _dlt_partitions(bootstrap, prefix, security)
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                **security.client_options())
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        letters: list[DeadLetter] = []
        while len(letters) < limit and any([await _behind(consumer, tp, ends[tp]) for tp in partitions]):
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batch.values():
                letters.extend(_describe(r) for r in records)
        return letters[:limit]
    finally:
        await consumer.stop()


async def _dlt_partitions(bootstrap: str, prefix: str, security: KafkaSecurity) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in dlt_topics(prefix) if t in existing]
        described = await admin.describe_topics(wanted) if wanted else []
    finally:
        await admin.close()
    return [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]


async def _behind(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> bool:
    return await consumer.position(tp) < end


async def replay_dead_letters(bootstrap: str, prefix: str, timeout: float = 10.0,
                              security: KafkaSecurity = PLAINTEXT) -> int:
    """Send each dead letter not replayed before back to its original topic, with its key and headers."""
    consumer = AIOKafkaConsumer(
        *dlt_topics(prefix), bootstrap_servers=bootstrap, group_id=f"{prefix}{REPLAY_GROUP}",
        enable_auto_commit=False, auto_offset_reset="earliest", **security.client_options(),
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, **security.client_options())
    await consumer.start()
    await producer.start()
    replayed = 0
    try:
        idle_until = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < idle_until:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            if not batch:
                if consumer.assignment() and all(
                    [await _caught_up(consumer, tp) for tp in consumer.assignment()]
                ):
                    break
                continue
            for tp, records in batch.items():
                for record in records:
                    headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlt.")]
                    origin = f"{record.topic}:{record.partition}:{record.offset}"
                    headers.append(("dlt.replayed_from", origin.encode()))
                    original = dict(record.headers or ()).get("dlt.original_topic")
                    target = original.decode() if original else record.topic.removesuffix(DLT_SUFFIX)
                    await producer.send_and_wait(target, value=record.value, key=record.key, headers=headers)
                    replayed += 1
                await consumer.commit({tp: records[-1].offset + 1})
        return replayed
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()
        await consumer.stop()


async def _caught_up(consumer: AIOKafkaConsumer, tp: TopicPartition) -> bool:
    end = (await consumer.end_offsets([tp]))[tp]
    return await consumer.position(tp) >= end
