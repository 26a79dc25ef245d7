"""Transactional outbox: events are rows written in the transaction of the change they describe, and a
relay publishes them to Kafka in order.

A crash anywhere loses nothing and may publish a row twice; consumers skip the copy by event id.
With several instances on PostgreSQL only the one holding a session advisory lock publishes, so rows go
out in id order (per member, in the order they were written). The lock lives on a connection the leader
keeps, so it moves to another instance as soon as the leader dies.

The outbox is also where the business metrics are counted: every fact a service commits passes through
``Outbox.add`` exactly once, so counting its events after the commit (``count_events``) counts each
purchase, point and redemption once, and nothing for a transaction that rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from functools import partial
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.clock import utcnow
from shared.context import correlation_for
from shared.db.database import Database, unit_of_work
from shared.db.driver import WritesTogether
from shared.db.types import UTCDateTime
from shared.messaging.events import EventData
from shared.messaging.kafka import PLAINTEXT, KafkaSecurity, make_producer, topic_name
from shared.metrics import EVENTS_PUBLISHED, OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, count_committed
from shared.signals import Signal

log = logging.getLogger(__name__)

OUTBOX_LOCK_ID = 0x10_7A_17  # one id per database; each service has its own database
KEEP_PUBLISHED = timedelta(days=1)
LEADER_CHECK_SECONDS = 1.0
# A unit of work that wrote outbox rows has committed: the relays of this process wake, so an event is
# published as soon as it is durable (each relay also polls, for rows written by other processes).
WRITTEN: Signal[None] = Signal("outbox rows committed")


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String(100), nullable=False),
        Column("key", String(64), nullable=False),
        Column("event_type", String(64), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("published_at", UTCDateTime, nullable=True),
        Index(
            "ix_outbox_unpublished", "id",
            postgresql_where=Column("published_at").is_(None),
            sqlite_where=Column("published_at").is_(None),
        ),
    )


class Outbox:
    """Writes events for one service; ``add`` only stages rows in the caller's transaction."""

    def __init__(self, table: Table, source: str) -> None:
        self.table = table
        self.source = source

    async def add(self, session: AsyncSession, *events: EventData, repeated: bool = False) -> None:
        """Stage ``events`` in the unit of work (``Database.transaction()``); once it commits they count in
        the business metrics and the relay is woken.

        ``repeated=True`` marks events that say again what an earlier event said (an answer given again to a
        re-asked request, a request asked again): published like any other, but not counted a second time.
        """
        if events:
            await session.execute(self.table.insert(), self._rows(session, events, repeated))

    def prepared_inserts(self, count: int) -> list[Insert]:
        """Inserts of ``count`` events whose values are bind parameters, for a use case that writes its
        events in one statement with its other rows (``shared.db.driver.WritesTogether``); ``bind`` fills them.
        One insert per event: SQLAlchemy does not cache a multi-row VALUES, and compiling costs more than
        running."""
        columns = ("event_id", "topic", "key", "event_type", "payload", "created_at")
        return [
            self.table.insert().values(
                {column: WritesTogether.value(f"outbox_{index}_{column}", self.table.c[column].type)
                 for column in columns})
            for index in range(count)
        ]

    def bind(self, session: AsyncSession, *events: EventData) -> dict[str, Any]:
        """The values of ``prepared_inserts(len(events))``; ``add``'s staging and counting apply."""
        return {f"outbox_{index}_{column}": value
                for index, row in enumerate(self._rows(session, events, repeated=False))
                for column, value in row.items()}

    def _rows(self, session: AsyncSession, events: tuple[EventData, ...], repeated: bool) -> list[dict[str, Any]]:
        rows = []
        for data in events:
            envelope = data.envelope(self.source, correlation_for(data.member_id))
            rows.append({
                "event_id": envelope.id, "topic": data.TOPIC.value, "key": data.member_id,
                "event_type": data.TYPE, "payload": envelope.model_dump_json(), "created_at": envelope.time,
            })
        uow = unit_of_work(session)
        uow.on_commit(_announce_written)
        if not repeated:
            uow.on_commit(partial(count_events, self.source, events))
        return rows


def _announce_written() -> None:
    WRITTEN.emit(None)


def count_events(source: str, events: tuple[EventData, ...]) -> None:
    """Counts committed events in the business metrics (a commit hook: the outbox sees every fact once)."""
    for data in events:
        count_committed(source, data)


class OutboxRelay:
    def __init__(
        self, db: Database, table: Table, *, bootstrap: str, topic_prefix: str, client_id: str,
        poll_seconds: float = 0.2, batch_size: int = 500, service: str | None = None, backlog_seconds: float = 5.0,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.security = security
        self.db = db
        self.service = service or client_id
        self.backlog_seconds = backlog_seconds
        self.table = table
        self.bootstrap = bootstrap
        self.topic_prefix = topic_prefix
        self.client_id = client_id
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.producer: AIOKafkaProducer | None = None
        self.kafka_ok = False
        self.published = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._leader_conn: AsyncConnection | None = None
        self._leader_checked_at = 0.0
        self._last_purge = 0.0

    def _woken(self, _: None) -> None:
        self._wake.set()

    async def start(self) -> None:
        WRITTEN.subscribe(self._woken)
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.client_id}")

    async def stop(self) -> None:
        WRITTEN.unsubscribe(self._woken)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop_producer()
        await self._drop_leadership()

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                sent = await self.publish_once()
                backoff = 0.2
                if sent < self.batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                    self._wake.clear()
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                self.kafka_ok = False
                log.warning("outbox relay: Kafka unavailable (%s); retrying in %.1fs", exc, backoff)
                await self._drop_producer()  # a fresh idempotent producer after failures keeps sequences sane
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:
                log.warning("outbox relay: %s: %s; retrying in %.1fs", type(exc).__name__, exc, backoff)
                await self._drop_leadership()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def publish_once(self) -> int:
        """Publish one batch of unpublished rows; returns how many were sent."""
        producer = await self._producer()  # connected even while idle, so readiness tells the truth
        if not await self._is_leader():
            return 0
        t = self.table
        # Both statements stand alone (no BEGIN/COMMIT around them): the relay wakes after every commit.
        async with self.db.snapshot() as connection:
            rows = (await connection.execute(
                select(t.c.id, t.c.topic, t.c.key, t.c.payload)
                .where(t.c.published_at.is_(None)).order_by(t.c.id).limit(self.batch_size)
            )).all()
        if not rows:
            await self._purge_published()
            return 0
        futures = [
            await producer.send(
                topic_name(self.topic_prefix, row.topic), value=row.payload.encode(), key=row.key.encode()
            )
            for row in rows
        ]
        await asyncio.gather(*futures)
        self.kafka_ok = True
        async with self.db.snapshot() as connection:
            await connection.execute(
                update(t).where(t.c.id.in_([row.id for row in rows])).values(published_at=utcnow())
            )
        self.published += len(rows)
        EVENTS_PUBLISHED.labels(self.service).inc(len(rows))
        return len(rows)

    async def refresh_backlog(self) -> None:
        """Sets the backlog gauges from the database: how many rows wait and how old the oldest is.

        Both reads walk the partial index of unpublished rows, which stays small while the relay keeps up.
        """
        t = self.table
        async with self.db.read() as session:
            waiting = (await session.execute(
                select(func.count()).select_from(t).where(t.c.published_at.is_(None))
            )).scalar_one()
            oldest = (await session.execute(
                select(t.c.created_at).where(t.c.published_at.is_(None)).order_by(t.c.id).limit(1)
            )).scalar_one_or_none()
        OUTBOX_BACKLOG.labels(self.service).set(waiting)
        OUTBOX_OLDEST_AGE.labels(self.service).set(
            max((utcnow() - oldest).total_seconds(), 0.0) if oldest is not None else 0.0)

    async def watch_backlog(self) -> None:
        """Refreshes the backlog gauges every ``backlog_seconds``, whether or not Kafka is reachable and
        whether or not this instance is the publisher: a backlog matters most when nothing publishes it."""
        while True:
            try:
                await self.refresh_backlog()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("outbox backlog not refreshed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.backlog_seconds)

    async def check_kafka(self, timeout: float = 1.5) -> bool:
        """An active probe for /readyz: can the producer's client fetch metadata now?"""
        if self.producer is None:
            return False
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), timeout)
        except (TimeoutError, KafkaError, OSError):
            return False
        return True

    async def _producer(self) -> AIOKafkaProducer:
        if self.producer is None:
            producer = make_producer(self.bootstrap, self.client_id, self.security)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self.producer = producer
        return self.producer

    async def _drop_producer(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)

    async def _is_leader(self) -> bool:
        if self.db.dialect != "postgresql":
            return True  # SQLite: one process owns the file
        if self._leader_conn is not None:
            # The lock lives as long as its connection: see that it is still there, at most once a second
            # (the relay wakes after every commit). Another instance that took over meanwhile publishes
            # the same rows in the same order, so consumers see duplicates, never a newer event first.
            if time.monotonic() - self._leader_checked_at > LEADER_CHECK_SECONDS:
                await self._leader_conn.exec_driver_sql("SELECT 1")  # raises if the lock's connection died
                self._leader_checked_at = time.monotonic()
            return True
        conn = await self.db.engine.connect()
        try:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")  # the lock is the session's
            got = (await conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({OUTBOX_LOCK_ID})")).scalar()
            self._leader_checked_at = time.monotonic()
        except BaseException:
            await conn.close()
            raise
        if got:
            self._leader_conn = conn
            log.info("outbox relay %s is the publisher", self.client_id)
            return True
        await conn.close()
        await asyncio.sleep(1.0)  # a follower checks now and then whether the leader is gone
        return False

    async def _drop_leadership(self) -> None:
        conn, self._leader_conn = self._leader_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def _purge_published(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_purge < 60:
            return
        self._last_purge = loop_time
        async with self.db.transaction() as session:
            await session.execute(
                delete(self.table).where(self.table.c.published_at < utcnow() - KEEP_PUBLISHED)
            )
