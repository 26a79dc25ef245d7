"""Observability across the real processes: one correlation id follows a purchase from the POS request through
the events it causes in points and tiers (Kafka envelopes and JSON log lines), and /metrics of the running
services shows the purchase and an outbox that drains to zero."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from tests.system.harness import System, eventually, running_system

pytestmark = pytest.mark.system

CORRELATION = "pos-7:receipt-4711"
TIERS = {
    "basis": "spend", "window_days": 365, "retention_days": 365,
    "tiers": [
        {"tier_id": "bronze", "name": "Bronze", "threshold": "0", "earn_multiplier": "1", "perks": []},
        {"tier_id": "silver", "name": "Silver", "threshold": "500", "earn_multiplier": "1.5", "perks": []},
    ],
}


@pytest.fixture(scope="module")
def system(pg: None, kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_system(kafka, tmp_path_factory.mktemp("observability-logs"), prefix_letter="o") as running:
        yield running


def envelopes(system: System, topics: list[str], member_id: str) -> list[dict[str, Any]]:
    """Every envelope about ``member_id`` on the system's ``topics``, read from the beginning."""
    prefix = system["points"].env["KAFKA_TOPIC_PREFIX"]
    bootstrap = system["points"].env["KAFKA_BOOTSTRAP_SERVERS"]

    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(*[prefix + t for t in topics], bootstrap_servers=bootstrap,
                                    group_id=f"check-{uuid.uuid4().hex}", auto_offset_reset="earliest")
        await consumer.start()
        try:
            found: list[dict[str, Any]] = []
            while batches := await consumer.getmany(timeout_ms=2000):
                found += [json.loads(r.value or b"") for rs in batches.values() for r in rs]
            return [e for e in found if e["subject"] == member_id]
        finally:
            await consumer.stop()

    return asyncio.run(read())


def sample(client: httpx.Client, name: str, **labels: str) -> float | None:
    """The value in /metrics, or None while the process has not reported it yet."""
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    return sample(client, name, **labels) or 0.0


def test_one_correlation_id_follows_a_purchase_across_services(system: System) -> None:
    points, tiers = system.client("points"), system.client("tiers")
    assert tiers.put("/v1/tiers", json=TIERS).status_code == 200
    assert points.put("/v1/members/ada", json={"name": "Ada"}).status_code == 201
    occurred = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    answer = points.post("/v1/purchases", headers={"X-Correlation-ID": CORRELATION}, json={
        "purchase_id": "ada-1", "member_id": "ada", "occurred_at": occurred, "currency": "USD", "total": "600.00"})
    assert answer.status_code == 201, answer.text
    eventually(lambda: tiers.get("/v1/members/ada/tier").json().get("tier_id") == "silver", "ada reaches silver")

    def caused() -> list[dict[str, Any]]:
        return [e for e in envelopes(system, ["loyalty.purchases", "loyalty.points", "loyalty.tiers"], "ada")
                if e["correlation_id"] == CORRELATION]

    eventually(lambda: {"tier.changed"} <= {e["type"] for e in caused()}, "tier.changed carries the id", 60)
    assert {e["type"] for e in caused()} == {"purchase.recorded", "points.earned", "tier.changed"}

    def logged(service: str) -> list[dict[str, Any]]:
        lines = system[service].log_path.read_text(errors="replace").splitlines()
        return [entry for line in lines if line.startswith("{")
                and (entry := json.loads(line)).get("correlation_id") == CORRELATION]

    assert any(e["message"] == "request" and e.get("route") == "/v1/purchases" for e in logged("points"))
    eventually(lambda: logged("tiers"), "tiers logs its handling of the purchase under the same id")


def test_running_services_report_business_counters_and_a_drained_outbox(system: System) -> None:
    points = system.client("points")
    assert points.put("/v1/members/bob", json={"name": "Bob"}).status_code == 201
    before = metric(points, "loyalty_purchases_total", service="points")
    occurred = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert points.post("/v1/purchases", json={"purchase_id": "bob-1", "member_id": "bob", "occurred_at": occurred,
                                              "currency": "USD", "total": "10.00"}).status_code == 201
    assert metric(points, "loyalty_purchases_total", service="points") == before + 1
    eventually(lambda: metric(points, "loyalty_events_published_total", service="points") >= 3,
               "the relay counts what it publishes")
    # the gauges are refreshed every few seconds by every instance, whether or not it publishes
    eventually(lambda: sample(points, "loyalty_outbox_backlog", service="points") == 0
               and sample(points, "loyalty_outbox_oldest_age_seconds", service="points") == 0,
               "the points outbox drains", 30)
