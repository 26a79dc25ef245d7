"""Outages of the parts the services stand on, on private servers the test may stop: Kafka away for 20 s
while purchases flow, and PostgreSQL restarted under load. No service process is restarted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.faults.cluster import Cluster, post_until_answered, purchase, running_cluster
from tests.faults.private_postgres import private_postgres
from tests.faults.test_processes_killed import check_exactly_once, enroll_all
from tests.support import ADMIN_KEY, SERVICES, kafka_sh
from tests.system.harness import eventually, free_port

pytestmark = pytest.mark.slow

MEMBERS = [f"o-{i:02d}" for i in range(40)]


def readiness(cluster: Cluster, name: str) -> str:
    try:
        status: str = httpx.get(f"{cluster[name].url}/readyz", timeout=3).json()["status"]
        return status
    except httpx.HTTPError:
        return "no answer"


def wait_all_ready(cluster: Cluster) -> None:
    for name in SERVICES:
        eventually(lambda: readiness(cluster, name) == "ready", f"{name} ready again", 60)  # noqa: B023


def steady_purchases(cluster: Cluster, tag: str, count: int, pace: float, during: Callable[[], None]
                     ) -> tuple[list[dict[str, Any]], list[httpx.Response]]:
    """Tills post ``count`` purchases at ``pace`` seconds apart while ``during()`` breaks something."""
    bodies = [purchase(f"{tag}-{i}", MEMBERS[i % len(MEMBERS)], f"{(i % 97) + 1}.25") for i in range(count)]
    first_answers: list[httpx.Response] = []
    lock = threading.Lock()
    start = time.monotonic()

    def till(numbered: tuple[int, dict[str, Any]]) -> int:
        number, body = numbered
        time.sleep(max(0.0, start + number * pace - time.monotonic()))
        try:
            answer = httpx.post(f"{cluster['points'].url}/v1/purchases", json=body, timeout=10,
                                headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            with lock:
                first_answers.append(answer)
        except httpx.HTTPError:
            pass
        return post_until_answered([cluster["points"].url], "/v1/purchases", body, deadline=180).status_code

    breaker = threading.Thread(target=during)
    breaker.start()
    with ThreadPoolExecutor(max_workers=4) as tills:
        statuses = list(tills.map(till, enumerate(bodies)))
    breaker.join()
    assert set(statuses) <= {200, 201}, statuses
    return bodies, first_answers


def test_kafka_away_for_20s_purchases_still_accepted_then_delivered_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    port, controller, data = free_port(), free_port(), tmp_path_factory.mktemp("private-kafka")
    kafka_sh("start", port, data, controller)
    try:
        with running_cluster(f"127.0.0.1:{port}", tmp_path_factory.mktemp("kafka-away-logs")) as cluster:
            enroll_all(cluster, MEMBERS)
            seen_degraded: list[str] = []

            def outage() -> None:
                time.sleep(3)
                kafka_sh("stop", port, data)
                stopped = time.monotonic()
                eventually(lambda: readiness(cluster, "points") == "degraded", "points says degraded", 15)
                seen_degraded.append(readiness(cluster, "points"))
                time.sleep(max(0.0, 20 - (time.monotonic() - stopped)))
                kafka_sh("start", port, data, controller)

            bodies, answers = steady_purchases(cluster, "ka", 240, 0.1, outage)
            assert seen_degraded == ["degraded"]
            assert all(a.status_code == 201 for a in answers), "purchases are accepted while Kafka is away"
            wait_all_ready(cluster)
            check_exactly_once(cluster, bodies)
    finally:
        kafka_sh("stop", port, data)


def test_postgres_restarted_requests_get_503_never_500_and_services_recover(
    kafka: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    databases = {name: f"loyalty_{name}" for name in SERVICES}
    with private_postgres(list(databases.values())) as server:
        urls = {name: server.url(db) for name, db in databases.items()}
        with running_cluster(kafka, tmp_path_factory.mktemp("pg-restart-logs"), db_urls=urls) as cluster:
            enroll_all(cluster, MEMBERS)

            def restart() -> None:
                time.sleep(2)
                server.stop()
                time.sleep(5)
                server.start()

            bodies, answers = steady_purchases(cluster, "pg", 200, 0.08, restart)
            failures = [a for a in answers if a.status_code >= 500]
            assert failures, "the restart should have been noticed by some request"
            assert {a.status_code for a in failures} == {503}
            assert all(a.headers["content-type"].startswith("application/problem+json") for a in failures)
            assert all(a.json()["type"] == "/problems/service-unavailable" for a in failures)
            wait_all_ready(cluster)
            check_exactly_once(cluster, bodies)

