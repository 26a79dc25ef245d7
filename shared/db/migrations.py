"""Alembic, driven from code: each service keeps its migrations in ``services/<name>/migrations``.

``upgrade`` is synchronous because Alembic runs its own event loop for the async engine; from async code
call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def alembic_config(service: str, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", f"services.{service}:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def upgrade(service: str, url: str, revision: str = "head") -> None:
    ensure_sqlite_dir(url)
    command.upgrade(alembic_config(service, url), revision)


MIGRATION_LOCK_KEY = 0x6C6F79616C7479  # "loyalty": any fixed number the services agree on


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's ``env.py``."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    sqlite = url.startswith("sqlite")

    def configure(connection: Connection | None = None) -> None:
        context.configure(
            connection=connection, url=None if connection is not None else url,
            target_metadata=target_metadata, render_as_batch=sqlite, compare_type=True,
        )

    if context.is_offline_mode():
        configure()
        with context.begin_transaction():
            context.run_migrations()
        return

    def do_run(connection: Connection) -> None:
        configure(connection)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Several migrators at once (a Job and init containers on first install) queue here instead
                # of racing to create the same tables; the later ones then find nothing to do.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run_async())


async def empty_schema(url: str) -> None:
    """Drops everything in a PostgreSQL database's public schema: the start of a migration from nothing
    (tests, the benchmark's own databases, a rebuild's target). Destructive by design; never on live data."""
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()
