"""The engine and the one way to open a unit of work.

SQLite allows one writer at a time; the engine is set up for that here so that service code is written once
for both databases.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)

def make_engine(url: str, *, pool_size: int = 20, echo: bool = False) -> AsyncEngine:
    """Errors and echoed statements never show their parameters (``hide_parameters``): they carry members'
    e-mails and phones, which must not reach logs or dead-letter headers."""
    if url.startswith("sqlite"):
        # One connection per process: SQLite allows one writer, and queueing in the pool is kinder than
        # "database is locked" errors or lock upgrades that deadlock.
        engine = create_async_engine(
            url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=60, connect_args={"timeout": 30},
            hide_parameters=True,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # No overflow: connections opened for a burst and closed after it cost a connect and a TLS handshake
    # each, which under sustained load is most of a request's time. No pre-ping: it costs a round trip on
    # every checkout, a sizeable part of a one-statement request. A connection the server dropped fails
    # its request with a 503 (``is_unavailable``) and SQLAlchemy then discards every connection of the pool
    # opened before it, so a restart of the server costs about one answer per process.
    return create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=0, pool_recycle=1800,
                               hide_parameters=True)


CommitHook = Callable[[], None]


class UnitOfWork(AsyncSession):
    """One transaction, as ``Database.transaction()`` opens it, and what it sets off once it is committed.

    Use cases flush; the ``async with`` around them commits. What must happen only after the commit (waking
    the outbox relay, counting the events in the metrics, answering requests that wait on a redemption) is
    registered with ``on_commit``: the hooks run in order once the commit succeeded, never after a rollback,
    each once however often it was registered.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_commit: dict[CommitHook, None] = {}

    def on_commit(self, hook: CommitHook) -> None:
        self._on_commit.setdefault(hook, None)

    def run_commit_hooks(self) -> None:
        hooks, self._on_commit = self._on_commit, {}
        for hook in hooks:
            try:
                hook()
            except Exception:  # committed: a failing hook must not turn the answer into an error
                log.exception("a commit hook failed: %r", hook)


def unit_of_work(session: AsyncSession) -> UnitOfWork:
    """The session as the unit of work it is (every session ``Database`` opens is one)."""
    if not isinstance(session, UnitOfWork):
        raise TypeError("this write belongs in a unit of work: open it with Database.transaction()")
    return session


class Database:
    """The engine plus the one way to open a unit of work.

    ``transaction()`` is the boundary: use cases only flush, the caller's ``async with`` commits and then
    runs the unit of work's ``on_commit`` hooks.
    """

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = async_sessionmaker(self.engine, class_=UnitOfWork, expire_on_commit=False,
                                           autoflush=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        async with self.sessions() as uow:
            async with uow.begin():
                yield uow
            uow.run_commit_hooks()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; it still runs in a transaction so a page is one consistent snapshot."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A connection without BEGIN and COMMIT, for a read that is one statement (which sees one snapshot
        by itself): two round trips fewer than ``read()`` on the hottest reads."""
        async with self.engine.connect() as connection:
            yield await connection.execution_options(isolation_level="AUTOCOMMIT")

    async def ping(self, timeout: float = 2.0) -> None:
        async def _ping() -> None:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")

        await asyncio.wait_for(_ping(), timeout)

    async def dispose(self) -> None:
        await self.engine.dispose()
