"""Statements that carry a whole batch of rows, for use cases that catch up on a backlog in a few statements.

On PostgreSQL a batch's rows travel as one array per column (``unnest``), so a statement has a handful of
parameters however many rows it carries: compiled once, planned once, executed once. Elsewhere (SQLite) the
same statements run once per row (executemany). Rows written here bypass the ORM session: see
``expire_objects``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, String, Table, any_, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession


def is_postgres(session: AsyncSession) -> bool:
    """Whether the session's database takes arrays (the other one, SQLite, gets a statement per row)."""
    return bool(session.get_bind().dialect.name == "postgresql")


async def force_custom_plans(session: AsyncSession) -> None:
    """Until the transaction ends, PostgreSQL plans the array statements for each batch's arrays (at a
    fraction of a millisecond) instead of reusing a generic plan: one made while a table was nearly empty
    scans it whole, and a consumer catching up makes a table grow faster than the statistics follow."""
    if is_postgres(session):
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def among(session: AsyncSession, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column = ANY(array)`` on PostgreSQL: one parameter, one statement to prepare whatever the number of
    values; an IN list, rendered anew for every length, elsewhere."""
    if is_postgres(session):
        return cast(ColumnElement[bool], column == any_(bindparam(None, list(values), type_=array_of(column.type))))
    return cast(ColumnElement[bool], column.in_(values))


def array_of(item: Any) -> ARRAY[Any]:
    """An array of the column's values, strings without their length: an explicit cast to ``varchar(n)``
    cuts a longer value short, where storing it into the column (or comparing) must fail (or not match)."""
    return ARRAY(String() if isinstance(item, String) else item)


def unnested(table: Table, rows: list[dict[str, Any]]) -> Any:
    """The rows as ``unnest(arrays) WITH ORDINALITY AS v(columns..., ord)`` (PostgreSQL), a column of
    ``table`` each; ``ord`` keeps the rows' order."""
    columns = list(rows[0])
    arrays = [bindparam(f"rows_{column}", [row[column] for row in rows], type_=array_of(table.c[column].type))
              for column in columns]
    return func.unnest(*arrays).table_valued(*columns, with_ordinality="ord").render_derived(name="v")


async def insert_rows(
    session: AsyncSession, table: Table, rows: list[dict[str, Any]], *, on_conflict: str | None = None,
    keep: Sequence[str] = (),
) -> None:
    """Insert the rows (all with the same columns) in their order; with ``on_conflict``, a row whose key
    exists sets the stored one's columns instead (all but the key and ``keep``)."""
    if not rows:
        return
    postgres = is_postgres(session)
    statement = (postgresql.insert if postgres else sqlite.insert)(table)
    if postgres:
        rows_ = unnested(table, rows)
        statement = statement.from_select(list(rows[0]), select(*(rows_.c[c] for c in rows[0])).order_by(rows_.c.ord))
    if on_conflict is not None:
        statement = statement.on_conflict_do_update(index_elements=[on_conflict], set_={
            column: statement.excluded[column] for column in rows[0] if column != on_conflict and column not in keep})
    if postgres:
        await session.execute(statement)
    else:
        await session.execute(statement, rows)


async def update_rows(session: AsyncSession, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """Set each row's columns (all rows with the same ones) on the stored row with its ``key``."""
    if not rows:
        return
    if is_postgres(session):
        rows_ = unnested(table, rows)
        await session.execute(update(table).where(table.c[key] == rows_.c[key])
                              .values({column: rows_.c[column] for column in rows[0] if column != key}))
        return
    await session.execute(update(table).where(table.c[key] == bindparam("row_key")), [
        {"row_key": row[key], **{column: value for column, value in row.items() if column != key}} for row in rows])


def expire_objects(session: AsyncSession, *models: type[Any]) -> None:
    """Rows written by these statements bypass the session: the objects of ``models`` it holds are read
    again on their next use, so a later step of the same transaction never builds on (or writes back) what
    the session held before."""
    for obj in list(session.sync_session.identity_map.values()):
        if isinstance(obj, models):
            session.expire(obj)
