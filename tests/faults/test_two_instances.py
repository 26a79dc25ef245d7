"""Two processes of each service share the consumer groups and the outbox; one of each is killed while
tills post. The survivors take over: every purchase is applied once, and per member the purchase events
reach Kafka in the order points recorded them."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiokafka import AIOKafkaConsumer

from shared.messaging.events import Topic
from tests.faults.cluster import Cluster, ledger_of, post_until_answered, purchase, running_cluster
from tests.faults.test_processes_killed import check_exactly_once, enroll_all

pytestmark = pytest.mark.slow

MEMBERS = [f"d-{i:02d}" for i in range(60)]


@pytest.fixture(scope="module")
def cluster(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(kafka, tmp_path_factory.mktemp("two-instance-logs"), instances=2) as running:
        yield running


async def purchase_order_in_kafka(kafka: str, topic: str) -> dict[str, list[str]]:
    """Per member, the purchase ids of purchase.recorded events in log order (first time each is seen)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        order: dict[str, list[str]] = {}
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=1000)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                for record in records:
                    event = json.loads(record.value)
                    if event["type"] == "purchase.recorded":
                        ids = order.setdefault(event["subject"], [])
                        if event["data"]["purchase_id"] not in ids:
                            ids.append(event["data"]["purchase_id"])
        return order
    finally:
        await consumer.stop()


def test_one_instance_of_each_killed_the_other_takes_over(cluster: Cluster, kafka: str) -> None:
    enroll_all(cluster, MEMBERS)
    rng = random.Random("two")
    bodies = [purchase(f"dd-{i}", rng.choice(MEMBERS), f"{rng.randint(100, 9_000) / 100:.2f}") for i in range(1200)]
    urls = [process.url for process in cluster.instances["points"]]

    def kill_one_of_each() -> None:
        time.sleep(3)
        for name in ("points", "rewards", "tiers"):
            cluster.instances[name][0].kill()

    killer = threading.Thread(target=kill_one_of_each)
    killer.start()
    with ThreadPoolExecutor(max_workers=8) as tills:
        statuses = list(tills.map(lambda body: post_until_answered(urls, "/v1/purchases", body).status_code,
                                  bodies))
    killer.join()
    assert set(statuses) <= {200, 201}

    survivor = cluster.instances["points"][1]
    points = cluster.client("points", instance=1)
    cluster.instances["points"][0] = survivor  # the checks below ask the survivor
    cluster.instances["tiers"][0] = cluster.instances["tiers"][1]
    check_exactly_once(cluster, bodies)

    in_kafka = asyncio.run(purchase_order_in_kafka(kafka, cluster.prefix + Topic.PURCHASES))
    for member in MEMBERS:
        recorded = [e["purchase_id"] for e in reversed(ledger_of(points, member)) if e["kind"] == "earn"]
        assert in_kafka.get(member, []) == recorded, f"{member}: events out of order or missing"
