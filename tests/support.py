"""Builders and harness pieces the tests share: servers, service apps over httpx, event delivery."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.migrations import empty_schema, upgrade
from shared.messaging.consumer import EventConsumer
from shared.messaging.events import EventData
from shared.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("points", "rewards", "tiers")
ADMIN_KEY = "test-admin-key-7f3a9c1d2e"
PG_BASE = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://loyalty:loyalty@127.0.0.1:5432")
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


# Two suite runs on one machine (say, two developers' branches) keep apart by giving one of them a suffix.
DB_SUFFIX = os.environ.get("LOYALTY_TEST_DB_SUFFIX", "")


def db_name(name: str) -> str:
    """The database a test uses, e.g. ``loyalty_test_points`` (plus ``LOYALTY_TEST_DB_SUFFIX`` when set)."""
    return f"{name}{DB_SUFFIX}"


def db_url(database: str) -> str:
    return f"{PG_BASE}/{database}"


def service_db_url(service: str) -> str:
    return db_url(db_name(f"loyalty_test_{service}"))


def vendor_assets() -> ModuleType:
    """deploy/local/vendor_assets.py (a script, not a package module) as a module."""
    name = "deploy_local_vendor_assets"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "deploy/local/vendor_assets.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before it runs: its dataclass looks its module up
        spec.loader.exec_module(module)
    return sys.modules[name]


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ensure_postgres(databases: list[str]) -> None:
    """Start PostgreSQL and create the databases (the script is a no-op for what already exists)."""
    subprocess.run(["bash", str(ROOT / "deploy/local/postgres.sh"), *databases], check=True,
                   stdout=subprocess.DEVNULL)


def ensure_kafka() -> None:
    subprocess.run(["bash", str(ROOT / "deploy/local/kafka.sh"), "start"], check=True, stdout=subprocess.DEVNULL)


async def recreate_schema(url: str, service: str) -> None:
    """An empty database migrated by the service's own migrations (so the migrations are tested too)."""
    await empty_schema(url)
    await asyncio.to_thread(upgrade, service, url)


async def truncate_all(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        tables = (await conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        ))).scalars().all()
        if tables:
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    await engine.dispose()


def settings_for(service: str, **overrides: Any) -> Any:
    settings_cls = importlib.import_module(f"services.{service}.settings").Settings
    values: dict[str, Any] = {
        "database_url": service_db_url(service), "kafka_enabled": False, "bootstrap_admin_key": ADMIN_KEY,
        "log_format": "none",
    }
    values.update(overrides)
    return settings_cls(**values)


@asynccontextmanager
async def service_client(service: str, **overrides: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The service's real app (lifespan run) over httpx's ASGI transport, as the admin by default."""
    app: FastAPI = importlib.import_module(f"services.{service}.app").create_app(settings_for(service, **overrides))
    async with app_client(app) as client:
        yield app, client


@asynccontextmanager
async def app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` with its lifespan run, over httpx's ASGI transport, as the admin by default."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as client:
            yield client


async def deliver(app: FastAPI, data: EventData, *, event_id: str | None = None, source: str = "test") -> str:
    """Hand an event to the service's handler through the inbox, as its Kafka consumer would."""
    runtime: Runtime = app.state.runtime
    spec = runtime.spec
    consumer = EventConsumer(runtime.db, spec.metadata.tables["inbox"], service=spec.name, bootstrap="unused",
                             topic_prefix="", topics=[], handlers=spec.handlers)
    envelope = data.envelope(source)
    if event_id is not None:
        envelope.id = event_id
    return await consumer.apply(envelope, data, spec.handlers[envelope.type])


async def outbox_events(app: FastAPI, event_type: str | None = None) -> list[dict[str, Any]]:
    """The envelopes a service has written to its outbox, oldest first."""
    import json

    runtime: Runtime = app.state.runtime
    table = runtime.spec.metadata.tables["outbox"]
    query = table.select().order_by(table.c.id)
    if event_type is not None:
        query = query.where(table.c.event_type == event_type)
    async with runtime.db.read() as session:
        rows = (await session.execute(query)).all()
    return [json.loads(row.payload) for row in rows]


def kafka_sh(action: str, port: int, data_dir: Path, controller_port: int | None = None) -> None:
    """A private broker (its own port and data folder) that a test may stop and start at will."""
    env = dict(os.environ, KAFKA_PORT=str(port), LOYALTY_DATA_DIR=str(data_dir), KAFKA_HEAP="-Xms128m -Xmx384m")
    if controller_port is not None:
        env["KAFKA_CONTROLLER_PORT"] = str(controller_port)
    subprocess.run([str(ROOT / "deploy/local/kafka.sh"), action], check=True, env=env, stdout=subprocess.DEVNULL)


async def scratch_database(backend: str, service: str, folder: Path) -> str:
    """An empty database of its own for a migration test: a SQLite file in ``folder`` or a PostgreSQL
    database ``loyalty_test_<service>_migrations`` (nothing else is disturbed)."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{folder / f'{service}.db'}"
    name = db_name(f"loyalty_test_{service}_migrations")
    await asyncio.to_thread(ensure_postgres, [name])
    await empty_schema(db_url(name))
    return db_url(name)


async def run_sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    """One statement in its own transaction on its own engine; the rows when it returns any."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement))
            return [tuple(row) for row in result.all()] if result.returns_rows else []
    finally:
        await engine.dispose()
