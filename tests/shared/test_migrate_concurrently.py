"""Several migrators at once on an empty database (a Kubernetes Job and the init containers of every pod on a
first install) all succeed: they queue on an advisory lock instead of racing to create the same tables."""

from __future__ import annotations

import asyncio
import os
import sys

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.migrations import empty_schema
from tests.support import ROOT, db_name, db_url, ensure_postgres

DATABASE = db_name("loyalty_test_migrate_race")


async def test_four_migrators_at_once_all_succeed_and_agree() -> None:
    await asyncio.to_thread(ensure_postgres, [DATABASE])
    url = db_url(DATABASE)
    await empty_schema(url)
    engine = create_async_engine(url)
    # Separate processes, as in a cluster (Alembic's context is global to a process).
    migrators = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ops.cli", "migrate", "points", cwd=ROOT,
            env={**os.environ, "POINTS_DATABASE_URL": url}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(4)
    ]
    outputs = [(await asyncio.wait_for(m.communicate(), 120))[0].decode() for m in migrators]
    assert [m.returncode for m in migrators] == [0, 0, 0, 0], outputs
    async with engine.connect() as conn:
        versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        tables = (await conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))).scalar_one()
    await engine.dispose()
    assert len(versions) == 1 and tables > 5, (versions, tables)
