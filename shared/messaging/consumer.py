"""Idempotent event consumer (the inbox side of exactly-once effect).

Each event's id is recorded in the same transaction as the handler's effects, and the Kafka offset is
committed only after that transaction commits: at most every ``COMMIT_SECONDS`` while events keep coming
(a commit is a round trip to the broker, dear when batches are small) and at once when the consumer is idle.
A redelivered event (after a crash or a rebalance) finds its id and is skipped. A handler
that keeps failing (a bug, data it cannot read) sends the event to ``<topic>.dlt`` with the error in headers
and the partition moves on; a database that does not answer is waited for, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from typing import TypeVar, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError
from sqlalchemy import Column, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clock import utcnow
from shared.context import correlation_id, subject_correlations
from shared.db.database import Database
from shared.db.failures import Failure, classify, describe, is_unavailable
from shared.db.statements import insert_ignoring_conflicts
from shared.db.types import UTCDateTime
from shared.messaging.events import Envelope, EventData, Topic, parse_data
from shared.messaging.kafka import DLT_SUFFIX, PLAINTEXT, KafkaSecurity, topic_name
from shared.metrics import CONSUMER_LAG, DEAD_LETTERS, EVENTS_HANDLED

log = logging.getLogger(__name__)
COMMIT_SECONDS = 1.0

Handler = Callable[[AsyncSession, Envelope, EventData], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, list[EventData]], Awaitable[None]]
E = TypeVar("E", bound=EventData)


def handle(use_case: Callable[[AsyncSession, E], Awaitable[None]], *types: type[E]) -> dict[str, Handler]:
    """Handlers that give events of ``types`` to ``use_case`` with their typed payload."""

    async def handler(session: AsyncSession, _: Envelope, data: EventData) -> None:
        assert isinstance(data, types)
        await use_case(session, data)

    return {event_type.TYPE: handler for event_type in types}


def handle_many(
    use_case: Callable[[AsyncSession, Sequence[E]], Awaitable[None]], *types: type[E]
) -> dict[str, BatchHandler]:
    """Batch handlers: consecutive events of ``types`` in a batch go to ``use_case`` together, in order.
    The use case must leave the same state as its events handled one by one (the consumer falls back to
    the one-event handlers when a batch fails)."""

    async def handler(session: AsyncSession, batch: list[EventData]) -> None:
        assert all(isinstance(data, types) for data in batch)
        await use_case(session, cast(list[E], batch))

    return {event_type.TYPE: handler for event_type in types}


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(64), nullable=False),
        Column("handled_at", UTCDateTime, nullable=False),
    )


@dataclass(frozen=True)
class Delivery:
    """A record this service handles, decoded."""

    record: ConsumerRecord[bytes, bytes]
    envelope: Envelope
    data: EventData
    handler: Handler


def _reason(exc: BaseException) -> str:
    """Why an event was given up on, without the values it carried (a validation error's input, a
    statement's parameters): dead-letter headers and logs hold no personal data."""
    if isinstance(exc, ValidationError):
        issues = "; ".join(f"{'.'.join(str(p) for p in issue['loc']) or 'event'}: {issue['msg']}"
                           for issue in exc.errors(include_input=False, include_url=False))
        return f"ValidationError: {issues}"
    return describe(exc)


class EventRefused(Exception):
    """An event that must not be believed: it fails the contract's checks (``refusal``), or its handler finds
    it about something the service cannot know (a member its owner never enrolled). Dead-lettered at once."""


def refusal(topic: str, key: bytes | None, envelope: Envelope, data: EventData, prefix: str = "") -> str | None:
    """Why an event must not be believed, or None. It must come on its own topic, from the service that the
    contract names as its producer, and be about the member its record key names: ``subject``, the key and
    ``data.member_id`` agree (the key decides the partition, so a mismatch would also break per-member order)."""
    expected_topic = topic_name(prefix, data.TOPIC.value)
    if topic != expected_topic:
        return f"{envelope.type} belongs on {expected_topic}, not {topic}"
    if envelope.source != data.SOURCE:
        return f"{envelope.type} is produced by {data.SOURCE}, not {envelope.source!r}"
    record_key = key.decode("utf-8", "replace") if key is not None else None
    if not (envelope.subject == record_key == data.member_id):
        return (f"subject {envelope.subject!r}, record key {record_key!r} and data.member_id "
                f"{data.member_id!r} must be the same member")
    return None


@contextmanager
def _correlated(envelope: Envelope) -> Iterator[None]:
    """The event's correlation id for what its handler writes (events it causes carry it on)."""
    token = correlation_id.set(envelope.correlation_id)
    try:
        yield
    finally:
        correlation_id.reset(token)


class EventConsumer:
    def __init__(
        self, db: Database, inbox: Table, *, service: str, bootstrap: str, topic_prefix: str,
        topics: list[Topic], handlers: dict[str, Handler], max_attempts: int = 5, batch_size: int = 500,
        batch_handlers: dict[str, BatchHandler] | None = None, backlog_batch_size: int = 2000,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.security = security
        self.db = db
        self.inbox = inbox
        self.service = service
        self.bootstrap = bootstrap
        self.topic_prefix = topic_prefix
        self.topics = [topic_name(topic_prefix, t.value) for t in topics]
        self.handlers = handlers
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.backlog_batch_size = max(backlog_batch_size, batch_size)
        self.batch_handlers = batch_handlers or {}
        self.handled = 0
        self.duplicates = 0
        self.dead_lettered = 0
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._dlt: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.service}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close_clients()

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                self._consumer = AIOKafkaConsumer(
                    *self.topics,
                    bootstrap_servers=self.bootstrap,
                    group_id=f"{self.topic_prefix}{self.service}",
                    client_id=f"{self.service}-consumer",
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    max_poll_records=self.batch_size,
                    **self.security.client_options(),
                )
                await self._consumer.start()
                backoff = 0.5
                await self._consume(self._consumer)
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                log.warning("%s consumer: Kafka unavailable (%s); reconnecting in %.1fs", self.service, exc, backoff)
            except Exception:
                log.exception("%s consumer stopped unexpectedly; restarting in %.1fs", self.service, backoff)
            await self._close_clients()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        size = self.batch_size
        handled: dict[TopicPartition, int] = {}  # offsets to commit
        committed_at = reported_at = 0.0
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=size)
            size = self._next_batch_size(sum(len(records) for records in batches.values()), size)
            if batches:
                await self._handle_batch([record for records in batches.values() for record in records])
                handled.update({tp: records[-1].offset + 1 for tp, records in batches.items()})
            now = time.monotonic()
            if handled and (not batches or now - committed_at >= COMMIT_SECONDS):
                try:
                    await consumer.commit(handled)
                except CommitFailedError as exc:
                    # The partitions moved to another instance; it will see these again and skip them.
                    log.info("%s consumer: commit after rebalance refused: %s", self.service, exc)
                handled, committed_at = {}, now
            if not batches or now - reported_at >= COMMIT_SECONDS:
                await self._report_lag(consumer)
                reported_at = now

    def _next_batch_size(self, got: int, asked: int) -> int:
        """While a poll comes back full there is a backlog: a service with batch handlers then takes
        ``backlog_batch_size`` records at a time, since a transaction of thousands of events costs little more
        than one of hundreds. Caught up, it goes back to ``batch_size``, whose failures (handled again one
        by one) and locks stay small."""
        if self.batch_handlers and got >= asked:
            return self.backlog_batch_size
        return self.batch_size

    async def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Lag per partition: the broker's high watermark (as of the last fetch) minus our position."""
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            with contextlib.suppress(KafkaError, AssertionError):
                position = await consumer.position(tp)
                CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(max(highwater - position, 0))

    async def _handle_batch(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """The records decoded and handled (``_handle_deliveries``), then one log line per event."""
        self._log_all(await self._handle_deliveries(await self._decode_all(records)))

    async def _handle_deliveries(self, deliveries: list[Delivery]) -> list[tuple[Delivery, str]]:
        """All the batch's events in one transaction (one commit, one inbox insert), in each partition's order;
        returns each event with its outcome, for the log.

        When the batch fails, nothing of it is kept and its events are handled one transaction each: an
        event that fails alone is retried and dead-lettered alone, and the others still take effect.
        """
        waited = 0.0
        while deliveries:
            try:
                outcomes = await self.apply_batch(deliveries)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_unavailable(exc):
                    waited = min(max(waited * 2, 0.5), 5.0)
                    log.warning("%s consumer: database unavailable (%s); retrying", self.service, describe(exc))
                    await asyncio.sleep(waited)
                    continue
                if len(deliveries) > 1:
                    log.info("%s consumer: a batch of %d failed (%s); handling its events one by one",
                             self.service, len(deliveries), describe(exc))
                for delivery in deliveries:
                    await self._apply(delivery)
                return []
            return self._count_batch(deliveries, outcomes)
        return []

    async def _decode_all(self, records: list[ConsumerRecord[bytes, bytes]]) -> list[Delivery]:
        """The records this service handles, decoded; one it cannot read goes to the dead letters at once
        (retrying cannot help)."""
        deliveries = []
        for record in records:
            decoded = self._decode(record)
            if isinstance(decoded, Delivery):
                deliveries.append(decoded)
            elif decoded is not None:
                await self._dead_letter(record, decoded, attempts=1)
        return deliveries

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> Delivery | Exception | None:
        """The event with its typed payload and handler; None for a type this service does not need; the
        error for an event it cannot read or must not believe (``refusal``)."""
        try:
            envelope = Envelope.model_validate_json(record.value or b"")
        except ValidationError as exc:
            return exc
        handler = self.handlers.get(envelope.type)
        if handler is None:
            return None
        try:
            data = parse_data(envelope)
        except (KeyError, ValidationError) as exc:
            return exc
        reason = refusal(record.topic, record.key, envelope, data, self.topic_prefix)
        if reason is not None:
            return EventRefused(reason)
        return Delivery(record, envelope, data, handler)

    async def _apply(self, delivery: Delivery) -> None:
        """One event in a transaction of its own, retried; dead-lettered when it keeps failing."""
        envelope = delivery.envelope
        attempt = 0
        waited = 0.0
        while True:
            attempt += 1
            try:
                with _correlated(envelope):
                    outcome = await self.apply(envelope, delivery.data, delivery.handler)
                self._count(delivery, outcome)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = classify(exc)
                if failure is Failure.UNAVAILABLE:
                    attempt -= 1  # not the event's fault: wait for the database, however long
                    waited = min(max(waited * 2, 0.5), 5.0)
                    log.warning("%s consumer: database unavailable (%s); retrying", self.service, describe(exc))
                    await asyncio.sleep(waited)
                    continue
                log.warning("%s consumer: %s %s failed (attempt %d): %s",
                            self.service, envelope.type, envelope.id, attempt, describe(exc))
                refused = failure is Failure.REFUSED or isinstance(exc, EventRefused)  # no retry changes that
                if refused or attempt >= self.max_attempts:
                    await self._dead_letter(delivery.record, exc, attempts=attempt)
                    return
                await asyncio.sleep(min(0.05 * 2**attempt, 2.0))

    def _count(self, delivery: Delivery, outcome: str) -> None:
        EVENTS_HANDLED.labels(self.service, delivery.envelope.type, outcome).inc()
        self._log_event(delivery, outcome)

    def _count_batch(self, deliveries: list[Delivery], outcomes: list[str]) -> list[tuple[Delivery, str]]:
        """The counter moved once per type and outcome of the batch; returns the events to log."""
        handled = list(zip(deliveries, outcomes, strict=True))
        for (event_type, outcome), count in Counter((d.envelope.type, outcome) for d, outcome in handled).items():
            EVENTS_HANDLED.labels(self.service, event_type, outcome).inc(count)
        return handled

    def _log_all(self, handled: list[tuple[Delivery, str]]) -> None:
        """One log line per event (the level is checked once per batch)."""
        if handled and log.isEnabledFor(logging.INFO):
            for delivery, outcome in handled:
                self._log_event(delivery, outcome)

    def _log_event(self, delivery: Delivery, outcome: str) -> None:
        envelope, record = delivery.envelope, delivery.record
        token = correlation_id.set(envelope.correlation_id)  # as _correlated does, without its generator
        try:
            log.info("event", extra={"event_type": envelope.type, "event_id": envelope.id,
                                     "subject": envelope.subject, "outcome": outcome,
                                     "partition": record.partition, "offset": record.offset})
        finally:
            correlation_id.reset(token)

    async def apply_batch(self, deliveries: list[Delivery]) -> list[str]:
        """Handle events in one transaction, each at most once in effect; returns each one's outcome label."""
        outcomes = []
        async with self.db.transaction() as session:
            claimed = await self._claim(session, deliveries)
            fresh = []
            for delivery in deliveries:
                event_id = delivery.envelope.id
                if event_id not in claimed:
                    outcomes.append("duplicate")
                    continue
                claimed.discard(event_id)  # the same event twice in one batch takes effect once
                outcomes.append("handled")
                fresh.append(delivery)
            for event_type, run in groupby(fresh, key=lambda d: d.envelope.type):
                await self._handle_run(session, event_type, list(run))
        self.handled += outcomes.count("handled")
        self.duplicates += outcomes.count("duplicate")
        return outcomes

    async def _claim(self, session: AsyncSession, deliveries: list[Delivery]) -> set[str]:
        """The ids of the events that no transaction has handled yet, recorded in the inbox. One statement
        executed with many rows (compiled once, sent in pages) rather than one statement of many VALUES,
        which SQLAlchemy would compile again for every batch."""
        now = utcnow()
        rows = [{"event_id": event_id, "event_type": event_type, "handled_at": now}
                for event_id, event_type in {d.envelope.id: d.envelope.type for d in deliveries}.items()]
        statement = insert_ignoring_conflicts(self.inbox, self.db.dialect).returning(self.inbox.c.event_id)
        return set((await session.execute(statement, rows)).scalars())

    async def apply(self, envelope: Envelope, data: EventData, handler: Handler) -> str:
        """Handle one event in one transaction, at most once in effect; returns the outcome label."""
        inbox = self.inbox
        async with self.db.transaction() as session:
            claimed = (await session.execute(
                insert_ignoring_conflicts(inbox, self.db.dialect)
                .values(event_id=envelope.id, event_type=envelope.type, handled_at=utcnow())
                .returning(inbox.c.event_id)
            )).first()
            if claimed is None:
                self.duplicates += 1
                return "duplicate"
            await handler(session, envelope, data)
        self.handled += 1
        return "handled"

    async def _handle_run(self, session: AsyncSession, event_type: str, run: list[Delivery]) -> None:
        """Consecutive events of one type: together when the type has a batch handler, else one by one."""
        batch_handler = self.batch_handlers.get(event_type)
        if batch_handler is None or len(run) == 1:
            for delivery in run:
                with _correlated(delivery.envelope):
                    await delivery.handler(session, delivery.envelope, delivery.data)
            return
        by_subject = {d.envelope.subject: d.envelope.correlation_id for d in run if d.envelope.correlation_id}
        token = subject_correlations.set(by_subject)
        try:
            await batch_handler(session, [d.data for d in run])
        finally:
            subject_correlations.reset(token)

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], exc: BaseException, attempts: int) -> None:
        if self._dlt is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                        client_id=f"{self.service}-dlt", **self.security.client_options())
            await producer.start()
            self._dlt = producer
        headers = [*(record.headers or ()),
                   ("dlt.error", _reason(exc)[:4000].encode()),
                   ("dlt.consumer", self.service.encode()),
                   ("dlt.original_topic", record.topic.encode()),
                   ("dlt.original_partition", str(record.partition).encode()),
                   ("dlt.original_offset", str(record.offset).encode()),
                   ("dlt.attempts", str(attempts).encode())]
        await self._dlt.send_and_wait(record.topic + DLT_SUFFIX, value=record.value, key=record.key,
                                      headers=headers)
        self.dead_lettered += 1
        EVENTS_HANDLED.labels(self.service, "unknown", "dead_lettered").inc()
        DEAD_LETTERS.labels(self.service, record.topic).inc()
        log.error("%s consumer: %s[%d]@%d sent to %s%s after %d attempts: %s", self.service, record.topic,
                  record.partition, record.offset, record.topic, DLT_SUFFIX, attempts, _reason(exc))

    async def _close_clients(self) -> None:
        for client in (self._consumer, self._dlt):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.stop(), 10)
        self._consumer = None
        self._dlt = None
