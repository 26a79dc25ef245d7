"""The fast path: prebuilt statements run on asyncpg directly, for the few requests whose time is mostly SQLAlchemy's.

A balance read costs about 310 us of CPU through ``AsyncConnection.execute`` (the Connection object, the
execution context, the cursor adapter) and about 100 us on asyncpg directly over a connection from the
same pool (bench/README.md "What the profiles showed"). The statement is still written with SQLAlchemy and
compiled once; only its execution skips the layers, and the column types still convert values both ways
(their bind and result processors, as SQLAlchemy would apply them). On SQLite, which is for running without
setup, the statement runs through SQLAlchemy as usual.

Rows come back as named tuples of the statement's columns. A failure comes back as SQLAlchemy's
``DBAPIError`` with the driver's error as ``orig``, so the error handlers answer it as any database error
(503 while the database is away, 422 for a value it cannot store).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from asyncpg.exceptions import PostgresConnectionError, PostgresError
from sqlalchemy import BindParameter, Select, bindparam, literal, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql import Delete, Insert, Update
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import greenlet_spawn

from shared.db.failures import Failure, classify

Processor = Callable[[Any], Any] | None


def _connection_broken(exc: Exception, driver: Any) -> bool:
    """Whether the connection can serve another statement: not once it is closed (SQLAlchemy's own test for
    asyncpg) or the client side failed (a dropped socket, or a protocol state a dropped connection left
    behind); yes after an error the server answered for this statement alone, or a value the driver refused
    to encode before sending anything (``invalid input for query argument``)."""
    closed = driver is None or driver.is_closed()
    if closed or isinstance(exc, PostgresConnectionError):
        return True
    return not isinstance(exc, PostgresError) and classify(exc) is not Failure.REFUSED


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # of the positional parameters, in order
    fixed: dict[str, Any]  # the statement's own literals
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]


class DriverStatement:
    """One SELECT (data-modifying CTEs included), compiled once for PostgreSQL and run on the driver."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self.row = namedtuple("Row", statement.selected_columns.keys(), rename=True)  # type: ignore[misc]
        self._compiled: _Compiled | None = None

    async def read(self, engine: AsyncEngine, params: dict[str, Any]) -> Sequence[Any]:
        """The rows, read outside any transaction (one statement sees one snapshot by itself)."""
        if engine.dialect.name != "postgresql":
            async with engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                return (await autocommit.execute(self.statement, params)).all()
        pooled = await engine.raw_connection()
        try:
            return await self._fetch(engine.dialect, pooled.driver_connection, params)
        except BaseException as exc:
            # A connection the fetch left unusable, or one cancelled in the middle of a fetch, is discarded.
            if not isinstance(exc, DBAPIError) or exc.connection_invalidated:
                await greenlet_spawn(pooled.invalidate, exc)
            raise
        finally:
            await greenlet_spawn(pooled.close)

    async def run_in(self, session: AsyncSession, params: dict[str, Any]) -> Sequence[Any]:
        """The rows, in the session's transaction. The transaction opens on the connection with the session's
        first statement, so a session that has run none goes through SQLAlchemy (checked, not assumed).
        A broken connection is left to the session, whose rollback finds it and discards it."""
        connection = await session.connection()
        if connection.dialect.name == "postgresql":
            driver = (await connection.get_raw_connection()).driver_connection
            if driver is not None and driver.is_in_transaction():
                return await self._fetch(connection.dialect, driver, params)
        return (await connection.execute(self.statement, params)).all()

    async def _fetch(self, dialect: Dialect, driver: Any, params: dict[str, Any]) -> list[Any]:
        """The rows from the driver; its errors as ``DBAPIError``, flagged when the connection is broken."""
        args: list[Any] = []
        try:
            compiled = await self._compile(dialect, driver)
            args = self._arguments(compiled, params)
            records = await driver.fetch(compiled.sql, *args)
        except Exception as exc:
            raise DBAPIError(self._compiled.sql if self._compiled else None, args, exc, hide_parameters=True,
                             connection_invalidated=_connection_broken(exc, driver)) from exc
        return self._rows(compiled, records)

    async def _compile(self, dialect: Dialect, driver: Any) -> _Compiled:
        """Compiled on first use; the result columns' types as the server describes them (what SQLAlchemy's
        result processors are chosen by) come from preparing the statement once."""
        if self._compiled is None:
            compiled = self.statement.compile(dialect=dialect)
            sql, names = str(compiled), tuple(compiled.positiontup or ())
            described = [attribute.type.oid for attribute in (await driver.prepare(sql)).get_attributes()]
            self._compiled = _Compiled(
                sql=sql, names=names, fixed=dict(compiled.params),
                binds=tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                            for name in names),
                results=tuple(column.type.dialect_impl(dialect).result_processor(dialect, oid)
                              for column, oid in zip(self.statement.selected_columns, described, strict=True)),
            )
        return self._compiled

    @staticmethod
    def _arguments(compiled: _Compiled, params: dict[str, Any]) -> list[Any]:
        """The positional values, converted by their types; a value not given is a literal of the statement."""
        values = [params[name] if name in params else compiled.fixed[name] for name in compiled.names]
        return [value if process is None or value is None else process(value)
                for value, process in zip(values, compiled.binds, strict=True)]

    def _rows(self, compiled: _Compiled, records: list[Any]) -> list[Any]:
        row, results = self.row, compiled.results
        if not any(results):
            return [row(*record) for record in records]
        return [row(*(value if process is None else process(value)
                      for value, process in zip(record, results, strict=True))) for record in records]


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
