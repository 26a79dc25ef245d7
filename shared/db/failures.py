"""What a database failure means for the caller, read from what the database said (its SQLSTATE) and from the
state of the connection, never from the exception's class alone: a driver raises the same class for a
dropped socket and for a value it cannot encode.

- ``UNAVAILABLE``: the server does not answer or the connection broke. HTTP answers 503 with Retry-After;
  a consumer waits for the database however long, without counting an attempt.
- ``CONTENDED``: the statement lost to a concurrent one (serialization failure, deadlock, a unique key
  taken meanwhile). Trying again succeeds: 503 with Retry-After, a consumer's ordinary retry.
- ``REFUSED``: the data cannot be stored (a data exception, a check or not-null violation, a value the driver
  cannot encode). Trying again cannot help: 422 over HTTP, a dead letter at once in a consumer.
- ``BUG``: anything else. 500 over HTTP (logged with its stack), retried and then dead-lettered by a consumer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from enum import Enum

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError


class Failure(Enum):
    UNAVAILABLE = "unavailable"
    CONTENDED = "contended"
    REFUSED = "refused"
    BUG = "bug"


# Connection exceptions (class 08), shutdown and "cannot connect now" (57P01-57P03, during a restart), too
# many connections (53300), out of memory or disk (53100, 53200), a statement cancelled by the server's
# timeouts (57014) and the server's own crash (XX000 is an internal error: not here).
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300", "53100", "53200", "57014")
# Serialization failure, deadlock, lock not available; a unique or foreign key that a concurrent
# transaction took or removed.
CONTENDED_SQLSTATES = ("40001", "40P01", "55P03", "23505", "23503")
# Data exceptions (class 22: a NUL in text, a number out of range, an invalid datetime), a not-null or check
# violation (23502, 23514).
REFUSED_SQLSTATES = ("22", "23502", "23514")

# The errors an HTTP handler or a consumer must look at (the others are not the database's).
DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, PoolTimeoutError, OSError, OverflowError)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it wraps (``orig``) and what caused it, outermost first."""
    seen: set[int] = set()
    pending = [exc]
    while pending and len(seen) < 16:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(e for e in (getattr(current, "orig", None), current.__cause__, current.__context__)
                       if isinstance(e, BaseException))


def sqlstate_of(exc: BaseException) -> str | None:
    for current in _chain(exc):
        code = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(code, str) and code:
            return code
    return None


def _from_sqlite_driver(exc: BaseException) -> bool:
    """Whether the error was raised inside the SQLite driver (binding a value, running a statement)."""
    traceback = exc.__traceback__
    while traceback is not None:
        filename = traceback.tb_frame.f_code.co_filename
        if "aiosqlite" in filename or "sqlite3" in filename:
            return True
        traceback = traceback.tb_next
    return False


def _client_side_data_error(exc: BaseException) -> bool:
    """asyncpg refusing to encode an argument (``invalid input for query argument``) before sending anything:
    the connection is fine. Its class is an InterfaceError, which SQLAlchemy passes on as one."""
    return any(type(current).__name__ == "DataError" and type(current).__module__.startswith("asyncpg")
               and getattr(current, "sqlstate", None) is None for current in _chain(exc))


def classify(exc: BaseException) -> Failure:
    sqlstate = sqlstate_of(exc)
    if sqlstate is not None:
        if sqlstate.startswith(UNAVAILABLE_SQLSTATES):
            return Failure.UNAVAILABLE
        if sqlstate.startswith(CONTENDED_SQLSTATES):
            return Failure.CONTENDED
        if sqlstate.startswith(REFUSED_SQLSTATES):
            return Failure.REFUSED
        return Failure.BUG
    if _client_side_data_error(exc):
        return Failure.REFUSED
    chain = list(_chain(exc))
    if any(isinstance(e, sqlite3.DataError | OverflowError) for e in chain) and (
            isinstance(exc, DBAPIError) or _from_sqlite_driver(exc)):
        return Failure.REFUSED
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return Failure.UNAVAILABLE
    if any(isinstance(e, PoolTimeoutError | OSError | TimeoutError | ConnectionError) for e in chain):
        return Failure.UNAVAILABLE
    for current in chain:
        message = str(current).lower()
        if isinstance(current, sqlite3.OperationalError) and ("locked" in message or "busy" in message):
            return Failure.CONTENDED
        if type(current).__module__.startswith("asyncpg") and (
                "connection is closed" in message or "another operation is in progress" in message
                or "connection was closed" in message):
            return Failure.UNAVAILABLE
    return Failure.BUG


def is_unavailable(exc: BaseException) -> bool:
    """True for failures of the database's reachability, not of the statement: worth waiting for."""
    return classify(exc) is Failure.UNAVAILABLE


def describe(exc: BaseException) -> str:
    """What went wrong, for logs and dead-letter headers, which must carry no personal data: for a database
    error its class, its meaning, SQLSTATE and the names of the table, column or constraint, never the
    statement's parameters or the server's message (which may quote the value, as "invalid input syntax for
    type integer" does); for anything else its class and message."""
    sqlstate = sqlstate_of(exc)
    if sqlstate is None and not isinstance(exc, DATABASE_ERRORS) and not _client_side_data_error(exc):
        return f"{type(exc).__name__}: {str(exc)[:500]}"
    parts = [classify(exc).value]
    if sqlstate:
        parts.append(f"SQLSTATE {sqlstate}")
    for current in _chain(exc):
        for attribute in ("table_name", "column_name", "constraint_name"):
            value = getattr(current, attribute, None)
            if isinstance(value, str) and value:
                parts.append(f"{attribute.removesuffix('_name')} {value}")
    return f"{type(exc).__name__} ({', '.join(dict.fromkeys(parts))})"
