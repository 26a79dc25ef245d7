"""Figures that cross Kafka: end to end at a fixed rate, consumer catch-up, and their bare-aiokafka references."""

from __future__ import annotations

import asyncio
import importlib
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.procstat import CpuWatch
from bench.system import ROUND_TRIP_TOPIC, SERVICES, System
from shared.clock import utcnow
from shared.messaging.events import Envelope, PurchaseRecorded, Topic
from shared.messaging.kafka import ensure_topics, topic_name

POLL_SECONDS = 0.03  # how often a sampled member's tier is asked for: the resolution of the figure
MAX_WATCHERS = 8  # sampled members followed at once, so the polling stays a small load beside the purchases
# Purchases awaiting their answer at most (64, as for the other figures); more would only queue in the client.
MAX_IN_FLIGHT = 64


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (the same definition for every figure computed here)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def consumer_lag(system: System) -> dict[str, int]:
    """Events not yet committed by each service's consumer group, over the topics it consumes."""
    admin = AIOKafkaAdminClient(bootstrap_servers=system.kafka)
    probe = AIOKafkaConsumer(bootstrap_servers=system.kafka)
    await admin.start()
    await probe.start()
    try:
        lags = {}
        for service in SERVICES:
            topics = importlib.import_module(f"services.{service}.consumers").TOPICS
            names = [topic_name(system.topic_prefix, t.value) for t in topics]
            partitions = [TopicPartition(n, p) for n in names for p in (probe.partitions_for_topic(n) or ())]
            if not partitions:
                await probe.topics()  # refresh metadata once, then read again
                partitions = [TopicPartition(n, p) for n in names for p in (probe.partitions_for_topic(n) or ())]
            ends = await probe.end_offsets(partitions)
            committed = await admin.list_consumer_group_offsets(f"{system.topic_prefix}{service}")
            lags[service] = sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items())
        return lags
    finally:
        await probe.stop()
        await admin.close()


async def wait_drained(system: System, timeout: float, say: Callable[[str], None]) -> float:
    """Until every consumer group has caught up (twice in a row, so the outbox relay's last events count);
    returns the seconds it took."""
    started = time.monotonic()
    quiet = 0
    while quiet < 2:
        lags = await consumer_lag(system)
        quiet = quiet + 1 if not any(lags.values()) else 0
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"consumers still behind after {timeout:.0f}s: {lags}")
        if quiet == 0 and int(time.monotonic() - started) % 10 == 0:
            say(f"  waiting for consumers to catch up: {lags}")
        await asyncio.sleep(1)
    return time.monotonic() - started


async def round_trip_reference(system: System, samples: int) -> dict[str, float]:
    """One produce (acks=all, as the relay's idempotent producer) and its consume on a private topic;
    the median and p99 of ``samples`` round trips."""
    name = topic_name(system.topic_prefix, ROUND_TRIP_TOPIC)
    await ensure_topics(system.kafka, [name], 1)
    producer = AIOKafkaProducer(bootstrap_servers=system.kafka, enable_idempotence=True, linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=system.kafka, enable_auto_commit=False, fetch_max_wait_ms=500)
    await producer.start()
    await consumer.start()
    try:
        partition = TopicPartition(name, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        await consumer.position(partition)
        times = []
        for i in range(samples + 5):  # the first few warm the connections up
            started = time.perf_counter()
            await producer.send_and_wait(name, f"ping-{i}".encode(), key=b"bench")
            await consumer.getone()
            if i >= 5:
                times.append((time.perf_counter() - started) * 1000)
        return {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(percentile(times, 99), 2),
                "samples": len(times)}
    finally:
        await producer.stop()
        await consumer.stop()


def purchase_body(purchase_id: str, member_id: str) -> dict[str, Any]:
    return {"purchase_id": purchase_id, "member_id": member_id, "occurred_at": (utcnow() - timedelta(minutes=1))
            .isoformat().replace("+00:00", "Z"), "currency": "USD", "total": "42.50", "lines": [
        {"sku": "A-1", "category": "grocery", "quantity": 2, "unit_price": "10.00"},
        {"sku": "B-2", "category": "household", "quantity": 1, "unit_price": "12.50"},
        {"sku": "C-3", "category": "drinks", "quantity": 5, "unit_price": "2.00"}]}


async def end_to_end(system: System, member_ids: list[str], rate: float, sample_every: int, run_id: str,
                     service_pids: dict[str, int] | None = None) -> dict[str, Any]:
    """Purchases at a steady ``rate`` per second, each the first of a fresh member (so it crosses into the
    second tier). For every ``sample_every``-th one, the time from its 201 until tiers shows the new tier (a)
    and points shows it on the member (b): points stores the tier and its multiplier in one update when it
    handles tier.changed, so the member's next purchase earns with it from then on."""
    tiers_seen: list[float] = []
    both_seen: list[float] = []
    late_starts: list[float] = []
    statuses: dict[str, int] = {}
    watchers: list[asyncio.Task[None]] = []
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    # The watchers poll through clients of their own, so they never queue behind purchases.
    async with (system.client("points") as points, system.client("points") as points_watch,
                system.client("tiers") as tiers):

        async def watch(member_id: str, accepted: float) -> None:
            tier_at = points_at = None
            deadline = accepted + 30
            try:
                # points learns the tier from tiers' tier.changed, so it cannot show it first: it is asked only
                # once tiers shows it, which halves the polling beside the purchases.
                while (tier_at is None or points_at is None) and time.perf_counter() < deadline:
                    if tier_at is None:
                        answer = await tiers.get(f"/v1/members/{member_id}/tier")
                        if answer.status_code == 200 and answer.json()["tier_id"] == "plus":
                            tier_at = time.perf_counter()
                    if tier_at is not None:
                        answer = await points_watch.get(f"/v1/members/{member_id}")
                        if answer.status_code == 200 and answer.json()["tier"] == "plus":
                            points_at = time.perf_counter()
                    if points_at is None:
                        await asyncio.sleep(POLL_SECONDS)
            except httpx.HTTPError:
                statuses["watch-error"] = statuses.get("watch-error", 0) + 1
                return
            if tier_at is None or points_at is None:
                statuses["not-seen-in-30s"] = statuses.get("not-seen-in-30s", 0) + 1
                return
            tiers_seen.append((tier_at - accepted) * 1000)
            both_seen.append((max(tier_at, points_at) - accepted) * 1000)

        async def send(index: int, member_id: str) -> None:
            try:
                answer = await points.post("/v1/purchases", json=purchase_body(f"{run_id}-e2e-{index}", member_id))
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
                return
            finally:
                in_flight.release()
            statuses[str(answer.status_code)] = statuses.get(str(answer.status_code), 0) + 1
            if answer.status_code == 201 and index % sample_every == 0:
                if sum(not w.done() for w in watchers) < MAX_WATCHERS:
                    watchers.append(asyncio.create_task(watch(member_id, time.perf_counter())))
                else:
                    statuses["sample-skipped"] = statuses.get("sample-skipped", 0) + 1

        own_cpu = CpuWatch({"generator": os.getpid(), **(service_pids or {})})
        started = time.perf_counter()
        senders = []
        for index, member_id in enumerate(member_ids):
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await in_flight.acquire()  # when points falls behind, the rate drops (and shows) instead
            late = time.perf_counter() - due
            if late > 0.001:
                late_starts.append(late * 1000)
            senders.append(asyncio.create_task(send(index, member_id)))
        sent_seconds = time.perf_counter() - started
        await asyncio.gather(*senders)
        answered_seconds = time.perf_counter() - started
        cpu = own_cpu.stop()
        generator_cpu = cpu.pop("generator")
        await asyncio.gather(*watchers)
    errors = sum(n for status, n in statuses.items() if status not in ("201", "sample-skipped"))
    return {
        "purchases": len(member_ids), "achieved_rate": round(len(member_ids) / sent_seconds, 1),
        "target_rate": rate, "max_send_lag_ms": round(max(late_starts, default=0.0), 1),
        "late_sends": len(late_starts),
        # Below the target when points answers slower than the purchases are sent (then the figure says so).
        "answered_rate": round(len(member_ids) / answered_seconds, 1),
        # This process sends and polls; near 1.0 it would be the bottleneck, not the services.
        "generator_cpu_cores": generator_cpu, "service_cpu_cores": cpu, "poll_seconds": POLL_SECONDS,
        "samples": len(both_seen), "errors": errors, "statuses": statuses,
        "p50_ms": round(percentile(both_seen, 50), 1), "p99_ms": round(percentile(both_seen, 99), 1),
        "tiers_p50_ms": round(percentile(tiers_seen, 50), 1), "tiers_p99_ms": round(percentile(tiers_seen, 99), 1),
    }


async def produce_backlog(system: System, count: int, member_ids: list[str]) -> dict[TopicPartition, int]:
    """``count`` valid purchase.recorded envelopes, keyed by member id, into the purchases topic; returns the
    offsets each partition had before, where the backlog starts."""
    name = topic_name(system.topic_prefix, Topic.PURCHASES.value)
    producer = AIOKafkaProducer(bootstrap_servers=system.kafka, enable_idempotence=True, linger_ms=20,
                                max_batch_size=256 * 1024)
    probe = AIOKafkaConsumer(bootstrap_servers=system.kafka)
    await producer.start()
    await probe.start()
    try:
        partitions = [TopicPartition(name, p) for p in sorted(await producer.partitions_for(name))]
        before = await probe.end_offsets(partitions)
        run = uuid.uuid4().hex[:8]
        now = utcnow()
        pending = []
        for i in range(count):
            member_id = member_ids[i % len(member_ids)]
            data = PurchaseRecorded(member_id=member_id, purchase_id=f"backlog-{run}-{i}", occurred_at=now,
                                    currency="USD", total=Decimal("42.50"), points_earned=42, channel="pos")
            envelope = data.envelope("points")
            pending.append(await producer.send(name, envelope.model_dump_json().encode(), key=member_id.encode()))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return dict(before)
    finally:
        await producer.stop()
        await probe.stop()


async def bare_consumer_reference(system: System, start: dict[TopicPartition, int], count: int) -> float:
    """Events per second of a plain aiokafka consumer reading the backlog from where it starts (decoding
    each envelope, as a consumer must); no database."""
    consumer = AIOKafkaConsumer(bootstrap_servers=system.kafka, enable_auto_commit=False, max_poll_records=500)
    await consumer.start()
    try:
        consumer.assign(list(start))
        for partition, offset in start.items():
            consumer.seek(partition, offset)
        seen = 0
        began = time.perf_counter()
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batches.values():
                for record in records:
                    PurchaseRecorded.model_validate(Envelope.model_validate_json(record.value or b"").data)
                    seen += 1
        return count / (time.perf_counter() - began)
    finally:
        await consumer.stop()


async def inbox_count(db_url: str, event_type: str) -> int:
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM inbox WHERE event_type = :t"),
                                           {"t": event_type})).scalar_one())
    finally:
        await engine.dispose()


async def catch_up(system: System, count: int, member_ids: list[str], say: Callable[[str], None]
                   ) -> dict[str, Any]:
    """Stops tiers, writes the backlog, starts tiers and times until its inbox holds every event."""
    tiers = system["tiers"]
    assert tiers.db_url is not None
    tiers.stop()
    before = await inbox_count(tiers.db_url, "purchase.recorded")
    produced_at = time.perf_counter()
    start = await produce_backlog(system, count, member_ids)
    say(f"  produced {count:,} purchase.recorded in {time.perf_counter() - produced_at:.1f}s; starting tiers")
    reference = await bare_consumer_reference(system, start, count)
    tiers.start()
    await asyncio.to_thread(tiers.wait_ready)
    began = time.perf_counter()
    first = await inbox_count(tiers.db_url, "purchase.recorded")
    engine = create_async_engine(tiers.db_url)
    try:
        done = first
        while done < before + count:
            await asyncio.sleep(0.5)
            async with engine.connect() as conn:
                done = int((await conn.execute(text(
                    "SELECT count(*) FROM inbox WHERE event_type = 'purchase.recorded'"))).scalar_one())
            if time.perf_counter() - began > 1800:
                raise RuntimeError(f"tiers handled {done - before:,} of {count:,} within 30 minutes")
    finally:
        await engine.dispose()
    elapsed = time.perf_counter() - began
    return {"events": count, "per_second": round((before + count - first) / elapsed, 1), "seconds": round(elapsed, 1),
            "handled_before_ready": first - before, "reference_per_second": round(reference, 1)}

