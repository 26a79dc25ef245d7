"""points SIGKILLed in the middle of settling a quarterly rebate for 600 dealers: started again, the job
settles the rest, and every dealer has exactly one settlement, one rebate entry in the ledger, one
``goal.reached`` on Kafka, and a balance equal to its ledger.

Only points runs, as a process on a database of this module's own (``loyalty_fault_goals_points``, plus
``LOYALTY_TEST_DB_SUFFIX``) and a private topic prefix."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from shared.messaging.events import Topic
from shared.messaging.kafka import all_topic_names, delete_topics
from tests.faults.test_checkout_crash import PointsProcess, assert_balanced, sql
from tests.support import ADMIN_KEY, db_name, db_url, ensure_postgres, recreate_schema
from tests.system.harness import envelopes_on, eventually, free_port

pytestmark = pytest.mark.slow

DATABASE = db_name("loyalty_fault_goals_points")
DEALERS = 600
PROGRAM = {"currency": "USD", "points_per_unit": "1", "expiry_days": 3650, "pending_days": 0,
           "excluded_categories": [], "time_zone": "UTC"}
REBATE = {"rule_id": "q-rebate", "kind": "goal", "metric": "spend", "target": "100", "period": "quarter",
          "reward": {"rebate_pct": "5"}, "valid_from": "2026-07-01T00:00:00Z"}


@pytest.fixture(scope="module")
def points(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PointsProcess]:
    ensure_postgres([DATABASE])
    url = db_url(DATABASE)
    asyncio.run(recreate_schema(url, "points"))
    prefix = f"g{uuid.uuid4().hex[:8]}."
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": kafka, "KAFKA_TOPIC_PREFIX": prefix, "LOYALTY_OUTBOX_POLL_SECONDS": "0.1",
                "LOYALTY_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY, "POINTS_DATABASE_URL": url})
    process = PointsProcess("points", free_port(), env, tmp_path_factory.mktemp("goal-crash-logs") / "points.log")
    process.start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
        asyncio.run(delete_topics(kafka, all_topic_names(prefix)))


def settled(process: PointsProcess) -> int:
    return int(sql(process, "SELECT count(*) FROM goal_settlement")[0][0])


def test_a_quarterly_rebate_is_settled_once_after_points_is_killed_mid_job(points: PointsProcess) -> None:
    dealers = [f"dealer-{n:04d}" for n in range(DEALERS)]
    with points.client() as client:
        assert client.put("/v1/program", json=PROGRAM).status_code == 200
        assert client.post("/v1/earning-rules", json=REBATE).status_code == 201
        for dealer in dealers:
            assert client.put(f"/v1/members/{dealer}", json={}).status_code == 201
        orders = [{"purchase_id": f"{dealer}-{k}", "member_id": dealer, "store_id": "depot", "channel": "portal",
                   "occurred_at": f"2026-08-{10 + k:02d}T10:00:00Z", "currency": "USD", "total": "60.00"}
                  for dealer in dealers for k in range(2)]
        for start in range(0, len(orders), 1000):
            answer = client.post("/v1/purchases/batch", json={"purchases": orders[start:start + 1000]})
            assert answer.status_code == 200 and all(r["status"] == 201 for r in answer.json()["results"])

    # The settlement runs in the request; the process dies while it is part-way through the dealers.
    def run_job() -> None:
        try:
            with points.client() as client:
                client.post("/v1/jobs/goals", timeout=120)
        except httpx.HTTPError:
            pass  # the process died under it

    job = threading.Thread(target=run_job)
    job.start()
    deadline = time.monotonic() + 60
    while settled(points) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert points.proc is not None
    points.proc.send_signal(signal.SIGKILL)
    points.proc.wait(timeout=10)
    job.join(timeout=30)
    part = settled(points)
    assert 50 <= part < DEALERS, f"the kill came at {part} of {DEALERS} settlements"

    points.start()
    points.wait_ready()
    with points.client() as client:
        again = client.post("/v1/jobs/goals", timeout=120)
        assert again.status_code == 200, again.text
        assert again.json()["reached"] == DEALERS - part
        assert client.post("/v1/jobs/goals", timeout=120).json()["reached"] == 0
        for dealer in dealers[:5]:
            goals = client.get(f"/v1/members/{dealer}/goals").json()["goals"]
            assert goals[0]["period_key"] == "2026-Q4"  # Q3 is behind them, settled

    per_member = Counter(member for member, in sql(points, "SELECT member_id FROM goal_settlement"))
    assert set(per_member) == set(dealers) and set(per_member.values()) == {1}
    rebates = sql(points, "SELECT member_id, points FROM ledger_entry WHERE kind = 'bonus'")
    assert sorted(rebates) == sorted((dealer, 600) for dealer in dealers)  # 5% of 120.00 at 0.01 a point
    assert_balanced(points, dealers)

    def reached() -> list[dict[str, object]]:
        return envelopes_on(points.env, Topic.POINTS, lambda e: e["type"] == "goal.reached")

    eventually(lambda: len({e["id"] for e in reached()}) >= DEALERS, "every goal.reached on Kafka", timeout=60)
    # Consumers deduplicate on the event id: a relay killed between sending and marking may send one twice.
    announced = Counter(str(e["subject"]) for e in {str(e["id"]): e for e in reached()}.values())
    assert set(announced) == set(dealers) and set(announced.values()) == {1}
