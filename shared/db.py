"""Database access shared by the services: engine, one transaction per unit of work, portable column types.

PostgreSQL is what production and the tests use; SQLite is the zero-setup default. The differences that
matter (no native decimal, naive datetimes, one writer at a time) are absorbed here so that service code
is written once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    DateTime,
    MetaData,
    Numeric,
    Table,
    bindparam,
    event,
    func,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.sql import ColumnElement, Delete, Insert, Update
from sqlalchemy.types import TypeDecorator, TypeEngine

from shared.driver import DriverStatement

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


def upsert(table: Table, dialect_name: str, keys: Sequence[str], *, add: Sequence[str] = (),
           only: Sequence[str] | None = None) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE``: a row that exists takes the new values (of the columns in
    ``only``, when given), except the columns in ``add``, to which the new values are added. For writing
    many rows in one statement."""
    statement = (postgresql.insert(table) if dialect_name == "postgresql" else sqlite.insert(table))
    new = statement.excluded
    updated = [c.name for c in table.columns if c.name not in keys] if only is None else list(only)
    return statement.on_conflict_do_update(index_elements=list(keys), set_={
        name: table.c[name] + new[name] if name in add else new[name] for name in updated
    })


def next_id(table: Table, column_name: str, dialect_name: str) -> ColumnElement[int]:
    """The id the next row of ``column``'s table will take, read before the insert, so rows that refer to it
    can be written together with it (``WritesTogether``).

    PostgreSQL takes it from the column's sequence. On SQLite it is ``max + 1``, which is only safe for the
    writer holding the database: call it after the transaction has written something (SQLite then keeps
    every other writer out until the commit).
    """
    if dialect_name == "postgresql":
        return func.nextval(func.pg_get_serial_sequence(table.name, column_name))
    return select(func.coalesce(func.max(table.c[column_name]), 0) + 1).scalar_subquery()


class WritesTogether:
    """Writes that do not read each other's results, built once with bind parameters and run with one dict
    of values: on PostgreSQL in one round trip, as the data-modifying CTEs of one statement (which run
    exactly once whether or not anything reads them); elsewhere one after another. Building and compiling
    such a statement costs more than running it, hence once per process. Each statement must touch rows
    the others do not."""

    PREFIX = "value_"

    @classmethod
    def value(cls, name: str, type_: TypeEngine[Any] | None = None) -> BindParameter[Any]:
        """The bind parameter of the value ``name`` in ``execute``'s dict. Its name is prefixed so that it
        never equals a column's: SQLAlchemy would add such a column to an INSERT or UPDATE it belongs to."""
        return bindparam(cls.PREFIX + name, type_=type_)

    def __init__(self, *statements: Insert | Update | Delete) -> None:
        self.statements = statements
        self.combined = DriverStatement(select(literal(1)).add_cte(
            *(statement.cte(f"write_{index}") for index, statement in enumerate(statements))))

    async def execute(self, session: AsyncSession, values: dict[str, Any]) -> None:
        params = {self.PREFIX + name: value for name, value in values.items()}
        connection = await session.connection()
        if connection.dialect.name == "postgresql":
            await self.combined.run_in(session, params)
            return
        for statement in self.statements:
            await connection.execute(statement, params)


def make_engine(url: str, *, pool_size: int = 20, echo: bool = False) -> AsyncEngine:
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
    # No overflow: connections opened for a burst and closed after it cost a connect and a TLS handshake
    # each, which under sustained load is most of a request's time. No pre-ping: it costs a round trip on
    # every checkout, a sizeable part of a one-statement request. A connection the server dropped fails
    # its request with a 503 (``is_unavailable``) and SQLAlchemy then discards every connection of the pool
    # opened before it, so a restart of the server costs about one answer per process.
    return create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=0, pool_recycle=1800)


AfterCommit = Callable[[AsyncSession], None]


class Database:
    """The engine plus the one way to open a unit of work.

    ``transaction()`` is the boundary: use cases only flush, the caller's ``async with`` commits.
    Callbacks registered with ``after_commit`` run once the commit succeeded (the outbox relay is woken
    this way, so an event is published as soon as it is durable).
    """

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
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
