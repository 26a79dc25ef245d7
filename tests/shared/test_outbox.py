"""The outbox relay against a real broker: nothing is lost while Kafka is away."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import Table, select

from shared.db.database import Database
from shared.messaging.events import MemberEnrolled
from shared.messaging.outbox import Outbox, OutboxRelay
from tests.support import kafka_sh
from tests.system.harness import free_port


async def wait_for(probe: object, timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await probe():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.2)
    return False


@pytest.mark.slow
async def test_event_written_while_kafka_is_away_is_delivered_when_it_is_back(
    db: Database, tables: dict[str, Table], tmp_path: Path
) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    outbox = tables["outbox"]
    relay = OutboxRelay(db, outbox, bootstrap=bootstrap, topic_prefix="", client_id="test-relay",
                        poll_seconds=0.1)
    await relay.start()
    try:
        event = MemberEnrolled(member_id="m-1", status="active", enrolled_at="2026-11-20T10:00:00Z")
        async with db.transaction() as session:
            await Outbox(outbox, "test").add(session, event)

        async def published() -> bool:
            async with db.read() as session:
                return (await session.execute(select(outbox.c.published_at))).scalar_one() is not None

        await asyncio.sleep(2)
        assert not await published() and not relay.kafka_ok

        await asyncio.to_thread(kafka_sh, "start", port, tmp_path, free_port())
        assert await wait_for(published, 60), "the relay did not publish once Kafka was back"
        consumer = AIOKafkaConsumer("loyalty.members", bootstrap_servers=bootstrap,
                                    auto_offset_reset="earliest", group_id=f"check-{uuid.uuid4().hex}")
        await consumer.start()
        try:
            records = await consumer.getmany(timeout_ms=10000)
            values = [json.loads(r.value) for batch in records.values() for r in batch]
        finally:
            await consumer.stop()
        assert [(v["type"], v["subject"]) for v in values] == [("member.enrolled", "m-1")]
        assert [r.key for batch in records.values() for r in batch] == [b"m-1"]
    finally:
        await relay.stop()
        await asyncio.to_thread(kafka_sh, "stop", port, tmp_path)
