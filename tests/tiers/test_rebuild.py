"""The rebuild from the Kafka log: events given to a live tiers service are also written to real Kafka topics
(with a duplicate, a message that is no event and a type tiers does not use); the rebuild replays them into
an empty PostgreSQL database and must arrive at the same tiers, segments and balances."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy import select

from ops.rebuild import RebuildError, read_program, rebuild
from services.tiers import schemas
from services.tiers.models import outbox
from services.tiers.service import members, segmentation
from services.tiers.settings import Settings
from shared.clock import clock
from shared.messaging import events
from shared.messaging.consumer import EventConsumer
from shared.messaging.events import Envelope, EventData
from shared.messaging.kafka import topic_name
from shared.runtime import Runtime
from tests.support import KAFKA, db_name, db_url, ensure_postgres, recreate_schema, service_client
from tests.tiers.builders import balance_event, enrolled, points_earned, program, purchase, refund, updated
from tests.tiers.snapshots import tiers_state

REBUILD_DB = db_name("loyalty_test_tiers_rebuild")



@pytest.fixture
async def rebuild_url(pg: None) -> str:
    await asyncio.to_thread(ensure_postgres, [REBUILD_DB])
    url = db_url(REBUILD_DB)
    await recreate_schema(url, "tiers")  # migrated, no rows: empty
    return url


class Log:
    """Hands events to the live service through its inbox and keeps their envelopes for Kafka."""

    def __init__(self, app: FastAPI) -> None:
        runtime: Runtime = app.state.runtime
        self.consumer = EventConsumer(runtime.db, runtime.spec.metadata.tables["inbox"], service="tiers",
                                      bootstrap="unused", topic_prefix="", topics=[], handlers=runtime.spec.handlers)
        self.handlers = runtime.spec.handlers
        self.records: list[tuple[str, bytes, bytes]] = []

    async def tell(self, data: EventData, source: str = "points") -> Envelope:
        envelope = data.envelope(source)
        await self.consumer.apply(envelope, data, self.handlers[envelope.type])
        self.write(data.TOPIC.value, data.member_id, envelope.model_dump_json().encode())
        return envelope

    def write(self, topic: str, key: str, value: bytes) -> None:
        self.records.append((topic, key.encode(), value))

    def announce(self, payloads: list[str]) -> None:
        """What the live relay would publish of the service's own announcements."""
        for payload in payloads:
            self.write(events.Topic.MEMBERS.value, json.loads(payload)["subject"], payload.encode())

    async def publish(self, prefix: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for topic, key, value in self.records:
                await producer.send_and_wait(topic_name(prefix, topic), value=value, key=key)
        finally:
            await producer.stop()


async def test_a_rebuild_from_the_log_arrives_at_the_live_state(
    empty_db: Callable[[str], Awaitable[str]], rebuild_url: str, prefix: str, tmp_path: Path
) -> None:
    live_url = await empty_db("tiers")
    async with service_client("tiers") as (app, client):
        assert (await client.put("/v1/tiers", json=program())).status_code == 200
        log = Log(app)
        # two years of history: the clock is moved back for what happened then, so handling time and event
        # time agree as they would have live
        with days_back(400):
            for member_id in ("ann", "bob", "dee"):
                await log.tell(enrolled(member_id))
            await sale(log, "s-1", "bob", "600.00")  # silver, kept until 35 days ago
            await sale(log, "s-2", "ann", "300.00")
            await sale(log, "s-3", "dee", "60.00")
        with days_back(200):
            await sale(log, "s-4", "ann", "800.00")  # gold, kept for another 165 days
        await log.tell(enrolled("cid", days_ago=20))
        for purchase_id, member_id, total, days_ago in (("s-5", "ann", "400.00", 10), ("s-6", "bob", "120.00", 30),
                                                        ("s-7", "cid", "40.00", 3), ("s-8", "eve", "700.00", 15)):
            duplicate = await sale(log, purchase_id, member_id, total, days_ago)
        await log.tell(refund("rf-1", "s-6", "bob", "20.00", points=20))
        await log.tell(balance_event(events.PointsSpent, "ann", 100))
        await log.tell(balance_event(events.PointsHeld, "ann", 60, held=40))
        await log.tell(balance_event(events.PointsReversed, "bob", 180, purchase_id="s-6", refund_id="rf-1"))
        await log.tell(updated("dee", "suspended", days_ago=400))
        assert await members.evaluate_all(app.state.db) == 0, "bob's downgrade came with his purchase"
        first = await segmentation.recompute_segments(app.state.db)
        log.announce(await outbox_payloads(app, "member.segment_changed"))
        # a purchase after the run moves dee's lifecycle at once (announced); then the last run
        await log.tell(purchase("s-late", "dee", "5.00", days_ago=0))
        last = await segmentation.recompute_segments(app.state.db)
        log.announce((await outbox_payloads(app, "member.segment_changed"))[first.changed:])
        log.write(events.Topic.PURCHASES.value, duplicate.subject, duplicate.model_dump_json().encode())
        log.write(events.Topic.PURCHASES.value, "eve", b"not an event")
        log.write(events.Topic.MEMBERS.value, "eve", Envelope(
            id=str(uuid.uuid4()), type="member.greeted", source="crm", subject="eve", time=last.computed_at,
            data={"member_id": "eve"}).model_dump_json().encode())
        program_file = tmp_path / "program.json"
        program_file.write_text((await client.get("/v1/tiers")).text)
    await log.publish(prefix)

    settings = Settings(database_url=rebuild_url, kafka_bootstrap_servers=KAFKA, kafka_topic_prefix=prefix,
                        kafka_partitions=3)
    report = await rebuild(rebuild_url, settings, program=read_program(program_file), now=last.computed_at)
    assert report.partitions == {topic_name(prefix, t): 3 for t in ("loyalty.members", "loyalty.purchases",
                                                                     "loyalty.points", "loyalty.redemptions")}
    assert report.events == len(log.records)
    assert (report.duplicates, report.skipped, report.ignored) == (1, 1, 1)

    live, rebuilt = await tiers_state(live_url), await tiers_state(rebuild_url)
    assert live["history"]["bob"] == [(None, "bronze", "enrolled"), ("bronze", "silver", "upgrade"),
                                      ("silver", "bronze", "downgrade")]
    assert live["history"]["ann"][-1] == ("bronze", "gold", "upgrade") and live["members"]["ann"][0] == "gold"
    assert live["balances"]["ann"] == (60, 0, 40), "the hold the log tells last"
    assert {m: s[4] for m, s in live["segments"].items()} == {
        "ann": "won_back", "bob": "won_back", "cid": "new", "dee": "won_back", "eve": "new"}
    for part in ("members", "history", "balances", "segments", "run"):
        assert rebuilt[part] == live[part], part
    assert report.segments is not None and report.segments.changed == 0
    assert rebuilt["unpublished"] == [], "what the log holds is not told again, and nothing changed since"

    with pytest.raises(RebuildError, match="not empty"):
        await rebuild(rebuild_url, settings)


@contextmanager
def days_back(days: int) -> Iterator[None]:
    clock.offset = -timedelta(days=days)
    try:
        yield
    finally:
        clock.offset = timedelta(0)


async def sale(log: Log, purchase_id: str, member_id: str, total: str, days_ago: float = 0) -> Envelope:
    """A purchase and its points, as points writes them."""
    told = await log.tell(purchase(purchase_id, member_id, total, days_ago=days_ago))
    await log.tell(points_earned(purchase_id, member_id, int(Decimal(total)), days_ago=days_ago))
    return told


async def outbox_payloads(app: FastAPI, event_type: str) -> list[str]:
    runtime: Runtime = app.state.runtime
    async with runtime.db.read() as session:
        rows = (await session.execute(
            select(outbox.c.payload).where(outbox.c.event_type == event_type).order_by(outbox.c.id))).all()
    return [row.payload for row in rows]


def test_the_program_file_may_be_what_get_answers(tmp_path: Path) -> None:
    answer = schemas.TierProgram(basis="spend", window_days=365, retention_days=365, downgrade="never", tiers=[],
                                 updated_at=datetime(2026, 1, 1).astimezone(), updated_by="ops").model_dump(mode="json")
    answer["tiers"] = program()["tiers"]
    path = tmp_path / "program.json"
    path.write_text(json.dumps(answer))
    assert read_program(path).downgrade == "never"
    path.write_text("{}")
    with pytest.raises(RebuildError, match="not a tier program"):
        read_program(path)
