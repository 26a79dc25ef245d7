"""The three services as real processes (uvicorn), for system and fault tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from shared.http.server import uvicorn_args
from shared.messaging.kafka import all_topic_names, delete_topics, topic_name
from tests.support import ADMIN_KEY, ROOT, SERVICES, db_name, db_url, recreate_schema


def envelopes_on(env: dict[str, str], topic: str, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Every envelope on the loyalty ``topic`` (of ``env``'s prefix and broker) that ``keep`` accepts, read
    from the beginning of every partition without a consumer group."""

    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(topic_name(env["KAFKA_TOPIC_PREFIX"], topic),
                                    bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            ends = await consumer.end_offsets(list(consumer.assignment()))
            found: list[dict[str, Any]] = []
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += [e for e in (json.loads(r.value or b"{}") for r in records) if keep(e)]
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    app: str = ""  # the factory uvicorn runs; the service's own ``create_app`` when empty

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "uvicorn"),
             *uvicorn_args(self.app or f"services.{self.name}.app:create_app", host="127.0.0.1", port=self.port)],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()

    def wait_ready(self, timeout: float = 60, want: str = "ready") -> None:
        """Until /readyz reports ``want`` (``ready`` means the database and Kafka both answer)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                body = httpx.get(f"{self.url}/readyz", timeout=2).json()
                last = str(body)
                if body.get("status") == want:
                    return
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not {want} within {timeout}s (last: {last}):\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self, *, kill: bool = True) -> None:
        """SIGKILL (or a clean stop), start again, wait until ready."""
        self.kill() if kill else self.stop()
        self.start()
        self.wait_ready()

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class System:
    """points, rewards and tiers on their own PostgreSQL databases and a private topic prefix."""

    def __init__(self, db_urls: dict[str, str], kafka: str, topic_prefix: str, log_dir: Path) -> None:
        base_env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
        base_env.update({
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "KAFKA_TOPIC_PREFIX": topic_prefix,
            "LOYALTY_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
            "LOYALTY_OUTBOX_POLL_SECONDS": "0.1",
        })
        self.services: dict[str, ServiceProcess] = {}
        for name, url in db_urls.items():
            env = dict(base_env)
            env[f"{name.upper()}_DATABASE_URL"] = url
            self.services[name] = ServiceProcess(name, free_port(), env, log_dir / f"{name}.log")

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    def start(self) -> None:
        for service in self.services.values():
            service.start()
        for service in self.services.values():
            service.wait_ready()

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()

    def client(self, name: str) -> httpx.Client:
        return httpx.Client(base_url=self.services[name].url, timeout=30,
                            headers={"Authorization": f"Bearer {ADMIN_KEY}"})


def eventually(probe: Callable[[], object], what: str, timeout: float = 30.0, interval: float = 0.1) -> None:
    """Polls ``probe()`` until it is truthy; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if probe():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(interval)


@contextmanager
def running_system(kafka: str, log_dir: Path, prefix_letter: str = "t",
                   env: dict[str, dict[str, str]] | None = None) -> Iterator[System]:
    """The three services on fresh ``loyalty_sys_*`` databases and a private topic prefix; ``env`` adds
    settings per service. Stopped and the topics deleted afterwards."""
    urls = {name: db_url(db_name(f"loyalty_sys_{name}")) for name in SERVICES}

    async def prepare() -> None:
        for name, url in urls.items():
            await recreate_schema(url, name)

    asyncio.run(prepare())
    prefix = f"{prefix_letter}{uuid.uuid4().hex[:8]}."
    running = System(urls, kafka, prefix, log_dir)
    for name, extra in (env or {}).items():
        running[name].env.update(extra)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        asyncio.run(delete_topics(kafka, all_topic_names(prefix)))
