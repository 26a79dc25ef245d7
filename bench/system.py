"""What the benchmark runs against: the three services it starts itself, as `make run` starts them, or the
running ones that ``BENCH_TARGET`` names.

``BENCH_TARGET`` is a comma-separated list of ``name=value``: ``points=``, ``rewards=``, ``tiers=`` (base URLs,
all three required) and optionally ``points_db=`` / ``tiers_db=`` (SQLAlchemy URLs of their databases, for the
scale seeding and the catch-up count). ``BENCH_ADMIN_KEY`` is then an admin key of those services, and
``KAFKA_TOPIC_PREFIX`` / ``KAFKA_BOOTSTRAP_SERVERS`` their Kafka. Figures that need to stop a service or to
read a process's memory are skipped against a target.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.db.migrations import empty_schema
from shared.http.server import uvicorn_args
from shared.messaging.kafka import all_topic_names, delete_topics, topic_name

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("points", "rewards", "tiers")
ROUND_TRIP_TOPIC = "bench.round-trip"  # the Kafka reference's own topic, under the run's prefix
# The app each service is started from: points with the reference write added (bench/reference.py).
FACTORIES = {"points": "bench.reference:create_points_app"}
PG_BASE = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://loyalty:loyalty@127.0.0.1:5432")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    name: str
    url: str
    db_url: str | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)
    port: int = 0
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self) -> None:
        """As deploy/local/run.py does: one uvicorn process with the services' command line, JSON logs to a file."""
        assert self.log_path is not None
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "uvicorn"),
                 *uvicorn_args(FACTORIES.get(self.name, f"services.{self.name}.app:create_app"), host="127.0.0.1",
                               port=self.port)],
                env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 90) -> None:
        """Until /readyz says ``ready`` (the database and Kafka both answer)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                body = httpx.get(f"{self.url}/readyz", timeout=2).json()
                if body.get("status") == "ready":
                    return
                last = str(body)
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f}s (last: {last}); see {self.log_path}")

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class System:
    services: dict[str, Service]
    admin_key: str
    kafka: str
    topic_prefix: str
    managed: bool  # started by the benchmark (so it may stop and restart services, and read their memory)

    def __getitem__(self, name: str) -> Service:
        return self.services[name]

    def client(self, name: str, timeout: float = 30) -> httpx.AsyncClient:
        # Idle connections dropped before uvicorn's 5 s keep-alive ends, so none is reused as the server closes it.
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200, keepalive_expiry=1.0)
        return httpx.AsyncClient(base_url=self.services[name].url, timeout=timeout, limits=limits,
                                 headers={"Authorization": f"Bearer {self.admin_key}"})

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()
        topics = [topic_name(self.topic_prefix, ROUND_TRIP_TOPIC)]
        if self.managed:
            topics += all_topic_names(self.topic_prefix)
        asyncio.run(delete_topics(self.kafka, topics))


def target_from_env(value: str) -> System:
    """The running services ``BENCH_TARGET`` names (see the module docstring)."""
    entries = dict(part.split("=", 1) for part in value.split(",") if part.strip())
    missing = [name for name in SERVICES if name not in entries]
    unknown = set(entries) - {*SERVICES, "points_db", "tiers_db"}
    if missing or unknown:
        raise SystemExit(f"bench: BENCH_TARGET needs points=, rewards=, tiers= (missing {missing}, unknown "
                         f"{sorted(unknown)})")
    key = os.environ.get("BENCH_ADMIN_KEY")
    if not key:
        raise SystemExit("bench: BENCH_TARGET needs BENCH_ADMIN_KEY, an admin key of those services")
    services = {name: Service(name, entries[name].rstrip("/"), entries.get(f"{name}_db")) for name in SERVICES}
    return System(services, key, os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
                  os.environ.get("KAFKA_TOPIC_PREFIX", ""), managed=False)


def start_local(log_dir: Path) -> System:
    """PostgreSQL with bench databases of its own, Kafka, migrations and topics under a private prefix, then
    the three services on free ports, as `make run` starts them."""
    databases = {name: f"loyalty_bench_{name}" for name in SERVICES}
    subprocess.run(["bash", str(ROOT / "deploy/local/postgres.sh"), *databases.values()], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([str(ROOT / "deploy/local/kafka.sh"), "start"], check=True, stdout=subprocess.DEVNULL)
    urls = {name: f"{PG_BASE}/{db}" for name, db in databases.items()}
    for url in urls.values():
        asyncio.run(empty_schema(url))
    key = "lk_bench_" + secrets.token_urlsafe(18)
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": kafka, "KAFKA_TOPIC_PREFIX": prefix, "LOYALTY_BOOTSTRAP_ADMIN_KEY": key,
        "LOYALTY_API_KEYS_FILE": str(log_dir / "api-keys.json"),
        **{f"{name.upper()}_DATABASE_URL": url for name, url in urls.items()},
    })
    loyalty = str(Path(sys.executable).parent / "loyalty")
    subprocess.run([loyalty, "migrate"], check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    subprocess.run([loyalty, "topics"], check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    services = {}
    for name in SERVICES:
        port = free_port()
        services[name] = Service(name, f"http://127.0.0.1:{port}", urls[name], env=env, port=port,
                                 log_path=log_dir / f"{name}.log")
    system = System(services, key, kafka, prefix, managed=True)
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready()
    except BaseException:
        system.stop()
        raise
    return system
