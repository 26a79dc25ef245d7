"""Processes killed with SIGKILL at random moments while tills keep posting and retrying: afterwards every
purchase is credited exactly once, every balance equals its ledger, and tiers counted every purchase once."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from tests.faults.cluster import Cluster, ledger_of, post_until_answered, purchase, running_cluster
from tests.system.harness import eventually

pytestmark = pytest.mark.slow

TILL_MEMBERS = [f"k-{i:03d}" for i in range(100)]
CONSUMER_MEMBERS = [f"c-{i:03d}" for i in range(100)]


@pytest.fixture(scope="module")
def cluster(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(kafka, tmp_path_factory.mktemp("fault-logs")) as running:
        yield running


def generate(count: int, members: list[str], tag: str) -> list[dict[str, str]]:
    rng = random.Random(tag)
    return [purchase(f"{tag}-{i}", rng.choice(members), f"{rng.randint(100, 20_000) / 100:.2f}")
            for i in range(count)]


def post_all(cluster: Cluster, purchases: list[dict[str, str]], victims: list[str], kills: int) -> list[int]:
    """Post from 8 tills while another thread kills and restarts the victims ``kills`` times."""
    done = threading.Event()
    killed: list[int] = []

    def killer() -> None:
        rng = random.Random(7)
        for round_ in range(kills):
            time.sleep(rng.uniform(0.5, 2.0))
            if done.is_set():
                break
            for name in victims:
                cluster[name].restart(kill=True)
            killed.append(round_)

    urls = [cluster["points"].url]
    chaos = threading.Thread(target=killer)
    chaos.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as tills:
            statuses = list(tills.map(lambda body: post_until_answered(urls, "/v1/purchases", body).status_code,
                                      purchases))
    finally:
        done.set()
        chaos.join()
    assert len(killed) == kills, f"only {len(killed)} kills happened before the tills finished"
    return statuses


def check_exactly_once(cluster: Cluster, purchases: list[dict[str, str]]) -> None:
    points, tiers = cluster.client("points"), cluster.client("tiers")
    expected_points: dict[str, int] = {}
    expected_spend: dict[str, Decimal] = {}
    for body in purchases:
        expected_points[body["member_id"]] = expected_points.get(body["member_id"], 0) + int(Decimal(body["total"]))
        expected_spend[body["member_id"]] = expected_spend.get(body["member_id"], Decimal(0)) + Decimal(body["total"])
    for member, want in expected_points.items():
        entries = ledger_of(points, member)
        earns = [e["purchase_id"] for e in entries if e["kind"] == "earn"]
        assert len(earns) == len(set(earns)), f"{member}: a purchase credited twice"
        balance = points.get(f"/v1/members/{member}/balance").json()
        assert balance["available"] == want == sum(e["points"] for e in entries), member

    def tiers_caught_up() -> bool:
        return all(Decimal(tiers.get(f"/v1/members/{m}/tier").json().get("qualifying_value", "-1")) == spend
                   for m, spend in expected_spend.items())

    eventually(tiers_caught_up, "tiers counted every purchase exactly once", timeout=90, interval=1)


def enroll_all(cluster: Cluster, members: list[str]) -> None:
    points = cluster.client("points")
    for member in members:
        assert points.put(f"/v1/members/{member}", json={}).status_code in (200, 201)


def test_points_killed_three_times_while_tills_post_2000_purchases(cluster: Cluster) -> None:
    enroll_all(cluster, TILL_MEMBERS)
    purchases = generate(2000, TILL_MEMBERS, tag="pk")
    statuses = post_all(cluster, purchases, victims=["points"], kills=3)
    assert set(statuses) <= {200, 201}
    check_exactly_once(cluster, purchases)


def test_consumers_killed_while_consuming(cluster: Cluster) -> None:
    enroll_all(cluster, CONSUMER_MEMBERS)
    purchases = generate(1500, CONSUMER_MEMBERS, tag="ck")
    statuses = post_all(cluster, purchases, victims=["tiers", "rewards"], kills=3)
    assert set(statuses) <= {200, 201}
    check_exactly_once(cluster, purchases)
