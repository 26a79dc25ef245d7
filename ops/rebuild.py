"""Rebuild the tiers service's state from the Kafka log into an empty database (``loyalty rebuild tiers``).

The loyalty topics keep their events forever, so the log is the program's history. The rebuild reads the
topics tiers consumes from the beginning up to the end offsets taken at the start, without a consumer group,
and hands every event to the same use cases as the live consumer, through the inbox (a duplicate in the log
is skipped as live). Then it evaluates tiers and segments at one fixed moment.

- **Time.** Each event is handled as of the time it was written (its envelope's ``time``), not the wall
  clock, so windows, retention and tier history come out as they did live.
- **Order.** Each partition is read in order (a member's events are in one partition per topic); across
  partitions and topics the records are merged by their timestamps, which is close to the order the live
  consumer saw. Where a member's events still interleave differently (a purchase before the enrolment), the
  use cases accept either order.
- **The tier program** is configuration, not history: it is not in the log. Give it as a file (the JSON of
  ``GET /v1/tiers``); without one the default program applies. It is applied before the first event, so
  members enrolled before a program change live are placed on the final ladder at once; their tier comes
  out the same, their history is shorter.
- **Announcements.** Everything the replay writes to the outbox (``tier.changed``, ``member.segment_changed``)
  is history the log already holds, so it is marked published. The ``member.segment_changed`` events the
  live service wrote are read back as the members' announced segments, so the final segmentation announces
  only what changed since; the final evaluation and segmentation leave their events for the relay.
- **Unreadable events** (or ones a use case refuses) are logged and skipped, as the live consumer would have
  dead-lettered them; a database that does not answer stops the rebuild.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers import consumers, schemas
from services.tiers.models import Member, Purchase, TierProgram, inbox, outbox
from services.tiers.service.members import evaluate_all
from services.tiers.service.program import put_program
from services.tiers.service.segmentation import recompute_segments, restore_announced_segment
from services.tiers.settings import Settings
from shared.clock import utcnow
from shared.context import correlation_id
from shared.db.database import Database
from shared.db.failures import describe, is_unavailable
from shared.db.migrations import upgrade
from shared.errors import LoyaltyError
from shared.messaging.consumer import EventConsumer, Handler, refusal
from shared.messaging.events import Envelope, EventData, MemberSegmentChanged, parse_data
from shared.messaging.kafka import KafkaSecurity, topic_name

log = logging.getLogger(__name__)

ACTOR = "rebuild"
FETCH_RECORDS = 500


class RebuildError(Exception):
    """The rebuild cannot start: the database is not empty, or the program file is not a program."""


@dataclass
class Report:
    events: int = 0
    handled: int = 0
    duplicates: int = 0
    ignored: int = 0  # types tiers does not use
    skipped: int = 0  # unreadable, or refused by a use case
    tier_changes: int = 0
    segments: schemas.SegmentRunOut | None = None
    partitions: dict[str, int] = field(default_factory=dict)  # topic -> partitions read

    def __str__(self) -> str:
        topics = ", ".join(f"{topic} ({n} partitions)" for topic, n in self.partitions.items()) or "no topics"
        lines = [f"read {self.events} events from {topics}",
                 f"handled {self.handled}, duplicates {self.duplicates}, ignored {self.ignored}, "
                 f"skipped {self.skipped}",
                 f"final evaluation: {self.tier_changes} members changed tier"]
        if self.segments is not None:
            lines.append(f"segments as of {self.segments.computed_at.isoformat()}: {self.segments.members} members, "
                         f"{self.segments.scored} scored, {self.segments.changed} changed since announced")
        return "\n".join(lines)


def read_program(path: Path) -> schemas.TierProgramIn:
    """A program file: the body of ``PUT /v1/tiers`` or the answer of ``GET /v1/tiers``."""
    try:
        body = json.loads(path.read_text())
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k not in ("updated_at", "updated_by")}
        return schemas.TierProgramIn.model_validate(body)
    except (OSError, ValueError) as exc:  # ValidationError and JSONDecodeError are ValueErrors
        raise RebuildError(f"{path}: not a tier program: {exc}") from exc


async def rebuild(
    database_url: str, settings: Settings, *, program: schemas.TierProgramIn | None = None,
    now: datetime | None = None,
) -> Report:
    """Migrate the empty database at ``database_url``, replay the log into it, then evaluate tiers and
    segments as of ``now`` (default: when the replay ends)."""
    await asyncio.to_thread(upgrade, "tiers", database_url)
    db = Database(database_url)
    try:
        await _ensure_empty(db)
        if program is not None:
            async with db.transaction() as session:
                try:
                    await put_program(session, program, ACTOR)
                except LoyaltyError as exc:
                    raise RebuildError(f"the program is not valid: {exc.detail}") from exc
        report = Report()
        await _replay(db, settings, report)
        async with db.transaction() as session:
            await session.execute(update(outbox).where(outbox.c.published_at.is_(None)).values(published_at=utcnow()))
        moment = now or utcnow()
        report.tier_changes = await evaluate_all(db, now=moment)
        report.segments = await recompute_segments(db, now=moment, params=settings.segment_params())
        return report
    finally:
        await db.dispose()


async def _ensure_empty(db: Database) -> None:
    async with db.read() as session:
        for table in (Member, Purchase, TierProgram):
            if await _count(session, table) > 0:
                raise RebuildError(f"the database is not empty ({table.__tablename__} has rows); give an empty one")
        if (await session.execute(select(func.count()).select_from(inbox))).scalar_one() > 0:
            raise RebuildError("the database is not empty (its inbox has events); give an empty one")


async def _count(session: AsyncSession, table: type[Member] | type[Purchase] | type[TierProgram]) -> int:
    count: int = (await session.execute(select(func.count()).select_from(table))).scalar_one()
    return count


def _as_of_event_time(use_case: consumers.UseCase) -> Handler:
    async def handler(session: AsyncSession, envelope: Envelope, data: EventData) -> None:
        await use_case(session, data, now=envelope.time)

    return handler


HANDLERS: dict[str, Handler] = {
    **{event_type.TYPE: _as_of_event_time(use_case) for event_type, use_case in consumers.USE_CASES.items()},
    MemberSegmentChanged.TYPE: _as_of_event_time(restore_announced_segment),
}


async def _replay(db: Database, settings: Settings, report: Report) -> None:
    prefix = settings.kafka_topic_prefix
    inbox_writer = EventConsumer(db, inbox, service="tiers-rebuild", bootstrap=settings.kafka_bootstrap_servers,
                                 topic_prefix=prefix, topics=[], handlers=HANDLERS)
    partitions = await _partitions(settings.kafka_bootstrap_servers,
                                   [topic_name(prefix, topic.value) for topic in consumers.TOPICS], report,
                                   settings.kafka_security())
    if not partitions:
        return
    kafka = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest", client_id="tiers-rebuild",
                             **settings.kafka_security().client_options())
    await kafka.start()
    try:
        kafka.assign(partitions)
        await kafka.seek_to_beginning(*partitions)
        end = await kafka.end_offsets(partitions)
        buffers: dict[TopicPartition, deque[ConsumerRecord[bytes, bytes]]] = {tp: deque() for tp in partitions}

        async def refill(tp: TopicPartition) -> bool:
            """Whether the partition has a record left before its end offset (fetched if needed)."""
            while not buffers[tp]:
                if await kafka.position(tp) >= end[tp]:
                    return False
                batch = await kafka.getmany(tp, timeout_ms=1000, max_records=FETCH_RECORDS)
                buffers[tp].extend(r for r in batch.get(tp, []) if r.offset < end[tp])
            return True

        # Partitions in order each, merged by record timestamp: close to the order the live consumer saw.
        heads: list[tuple[int, int, TopicPartition]] = []
        for index, tp in enumerate(partitions):
            if await refill(tp):
                heads.append((buffers[tp][0].timestamp, index, tp))
        heapq.heapify(heads)
        while heads:
            _, index, tp = heapq.heappop(heads)
            await _handle(inbox_writer, buffers[tp].popleft(), report)
            if await refill(tp):
                heapq.heappush(heads, (buffers[tp][0].timestamp, index, tp))
    finally:
        await kafka.stop()
    report.handled, report.duplicates = inbox_writer.handled, inbox_writer.duplicates


async def _partitions(bootstrap: str, names: list[str], report: Report,
                      security: KafkaSecurity) -> list[TopicPartition]:
    """Every partition of the topics that exist, in topic order."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="tiers-rebuild", **security.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        for name in names:
            if name not in existing:
                log.warning("rebuild: topic %s does not exist; nothing to read from it", name)
        wanted = [name for name in names if name in existing]
        described = {d["topic"]: d for d in await admin.describe_topics(wanted)} if wanted else {}
    finally:
        await admin.close()
    partitions: list[TopicPartition] = []
    for name in wanted:
        ids = sorted(p["partition"] for p in described[name]["partitions"])
        report.partitions[name] = len(ids)
        partitions.extend(TopicPartition(name, p) for p in ids)
    return partitions


async def _handle(inbox_writer: EventConsumer, record: ConsumerRecord[bytes, bytes], report: Report) -> None:
    report.events += 1
    if report.events % 10_000 == 0:
        log.info("rebuild: %d events read", report.events)
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    try:
        envelope = Envelope.model_validate_json(record.value or b"")
    except ValidationError as exc:
        log.warning("rebuild: %s is not an event envelope; skipped: %s", where, exc)
        report.skipped += 1
        return
    handler = HANDLERS.get(envelope.type)
    if handler is None:
        report.ignored += 1
        return
    try:
        data = parse_data(envelope)
    except (KeyError, ValidationError) as exc:
        log.warning("rebuild: %s %s unreadable; skipped: %s", where, envelope.type, exc)
        report.skipped += 1
        return
    refused = refusal(record.topic, record.key, envelope, data, inbox_writer.topic_prefix)
    if refused is not None:  # what the live consumer dead-lettered, the rebuild does not believe either
        log.warning("rebuild: %s %s refused; skipped: %s", where, envelope.type, refused)
        report.skipped += 1
        return
    token = correlation_id.set(envelope.correlation_id)
    try:
        await inbox_writer.apply(envelope, data, handler)
    except Exception as exc:
        if is_unavailable(exc):
            raise
        log.warning("rebuild: %s %s %s refused; skipped: %s", where, envelope.type, envelope.id, describe(exc))
        report.skipped += 1
    finally:
        correlation_id.reset(token)
