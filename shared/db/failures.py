"""What a database failure means for the caller: the server away (retry later) or the statement refused."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

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
