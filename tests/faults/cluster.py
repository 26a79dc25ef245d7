"""Processes to break: every service in one or more instances on databases of their own (``loyalty_fault_*``),
a private topic prefix, and a client that behaves like a POS (retries the same request until it is answered)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from shared.messaging.kafka import all_topic_names, delete_topics
from tests.support import ADMIN_KEY, SERVICES, db_name, db_url, ensure_postgres, recreate_schema
from tests.system.harness import ServiceProcess, free_port

FAULT_DATABASES = {name: db_name(f"loyalty_fault_{name}") for name in SERVICES}


class Cluster:
    def __init__(self, kafka: str, log_dir: Path, instances: int = 1, extra_env: dict[str, str] | None = None,
                 db_urls: dict[str, str] | None = None) -> None:
        self.kafka = kafka
        self.prefix = f"f{uuid.uuid4().hex[:8]}."
        self.urls = db_urls or {name: db_url(database) for name, database in FAULT_DATABASES.items()}
        base = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
        base.update({"KAFKA_BOOTSTRAP_SERVERS": kafka, "KAFKA_TOPIC_PREFIX": self.prefix,
                     "LOYALTY_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY, "LOYALTY_OUTBOX_POLL_SECONDS": "0.1",
                     **(extra_env or {})})
        self.instances: dict[str, list[ServiceProcess]] = {}
        for name, url in self.urls.items():
            env = {**base, f"{name.upper()}_DATABASE_URL": url}
            self.instances[name] = [ServiceProcess(name, free_port(), env, log_dir / f"{name}-{i}.log")
                                    for i in range(instances)]

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.instances[name][0]

    def every(self) -> Iterator[ServiceProcess]:
        for processes in self.instances.values():
            yield from processes

    def start(self, want: str = "ready") -> None:
        for process in self.every():
            process.start()
        for process in self.every():
            process.wait_ready(want=want)

    def stop(self) -> None:
        for process in self.every():
            process.stop()

    def client(self, name: str, instance: int = 0) -> httpx.Client:
        return httpx.Client(base_url=self.instances[name][instance].url, timeout=10,
                            headers={"Authorization": f"Bearer {ADMIN_KEY}"})


@contextmanager
def running_cluster(kafka: str, log_dir: Path, instances: int = 1, extra_env: dict[str, str] | None = None,
                    db_urls: dict[str, str] | None = None) -> Iterator[Cluster]:
    """Fresh databases (on the suite's PostgreSQL unless ``db_urls`` name others), the services started."""
    if db_urls is None:
        ensure_postgres(list(FAULT_DATABASES.values()))
    cluster = Cluster(kafka, log_dir, instances, extra_env, db_urls)

    async def prepare() -> None:
        for name, url in cluster.urls.items():
            await recreate_schema(url, name)

    asyncio.run(prepare())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        with contextlib.suppress(Exception):  # a test may have left its private broker stopped
            asyncio.run(delete_topics(kafka, all_topic_names(cluster.prefix)))


def post_until_answered(base_urls: list[str], path: str, body: dict[str, Any], *, deadline: float = 120.0
                        ) -> httpx.Response:
    """What a till does: send the same request again after any failure or timeout until it gets a 2xx/4xx
    answer (trying the instances in turn)."""
    stop = time.monotonic() + deadline
    attempt = 0
    while True:
        base = base_urls[attempt % len(base_urls)]
        attempt += 1
        try:
            answer = httpx.post(base + path, json=body, timeout=5,
                                headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            if answer.status_code < 500:
                return answer
        except httpx.HTTPError:
            pass
        if time.monotonic() > stop:
            raise AssertionError(f"{path} {body.get('purchase_id')} not answered within {deadline}s")
        time.sleep(0.1)


def purchase(pid: str, member: str, total: str) -> dict[str, Any]:
    """A purchase made an hour ago, so it is inside the tiers' rolling window whenever the test runs."""
    occurred = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    return {"purchase_id": pid, "member_id": member, "store_id": "store-1", "channel": "pos",
            "occurred_at": occurred, "currency": "USD", "total": total}


def ledger_of(client: httpx.Client, member: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"/v1/members/{member}/ledger", params=params).json()
        entries.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return entries
