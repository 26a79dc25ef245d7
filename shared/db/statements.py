"""Statements whose SQL differs by dialect: inserts that skip or merge conflicting rows, ids read ahead."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ColumnElement


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
