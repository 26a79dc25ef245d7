"""Database access shared by the services: engine, one transaction per unit of work, portable column types.

PostgreSQL is what production and the tests use; SQLite is the zero-setup default. The differences that
matter (no native decimal, naive datetimes, one writer at a time) are absorbed here so that service code
is written once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, MetaData, Numeric, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.types import TypeDecorator, TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


MONEY_SCALE = 4
_MONEY_FACTOR = Decimal(10) ** MONEY_SCALE


class Money(TypeDecorator[Decimal]):
    """An exact decimal amount: NUMERIC on PostgreSQL, scaled integer (1/10000) on SQLite.

    SQLite has no decimal type and would round through float; a scaled integer keeps SUM() exact, and
    ``func.sum`` takes this type from its argument, so aggregates come back as Decimal on both.
    """

    impl = Numeric(20, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        if dialect.name == "sqlite":
            return int((value * _MONEY_FACTOR).to_integral_exact())
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)) / _MONEY_FACTOR
        return Decimal(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeoutError, OSError)


# SQLSTATEs of a server that is away or going away: connection exceptions (class 08), shutdown and
# "cannot connect now" (57P01-57P03, during a restart), too many connections (53300).
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def is_unavailable(exc: BaseException) -> bool:
    """True for failures of the database's reachability, not of the statement: worth retrying later."""
    if isinstance(exc, UNAVAILABLE_ERRORS):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
    return exc.connection_invalidated or (bool(sqlstate) and sqlstate.startswith(UNAVAILABLE_SQLSTATES))


class Clock:
    """Wall-clock time for every service, with an offset that tests move to make days pass."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


clock = Clock()


def utcnow() -> datetime:
    return clock.now()


def insert_ignoring_conflicts(table: Table, dialect_name: str) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the dialect in use.

    Under concurrency PostgreSQL makes the second inserter wait for the first transaction and then skip,
    which is what idempotency keys and the inbox rely on.
    """
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        # One connection per process: SQLite allows one writer, and queueing in the pool is kinder than
        # "database is locked" errors or lock upgrades that deadlock.
        engine = create_async_engine(
            url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=60, connect_args={"timeout": 30}
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
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


AfterCommit = Callable[[AsyncSession], None]


class Database:
    """The engine plus the one way to open a unit of work.

    ``transaction()`` is the boundary: use cases only flush, the caller's ``async with`` commits.
    Callbacks registered with ``after_commit`` run once the commit succeeded (the outbox relay is woken
    this way, so an event is published as soon as it is durable).
    """

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        self._after_commit: list[AfterCommit] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def after_commit(self, callback: AfterCommit) -> None:
        self._after_commit.append(callback)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            async with session.begin():
                yield session
            for callback in self._after_commit:
                callback(session)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; it still runs in a transaction so a page is one consistent snapshot."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self, timeout: float = 2.0) -> None:
        async def _ping() -> None:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")

        await asyncio.wait_for(_ping(), timeout)

    async def dispose(self) -> None:
        await self.engine.dispose()
