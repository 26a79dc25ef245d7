from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from services.points.models import Base
from shared.db.database import Database


@pytest.fixture
async def db(empty_db: Callable[[str], Awaitable[str]]) -> AsyncIterator[Database]:
    """A migrated, empty service database (points', which has the outbox and inbox tables)."""
    database = Database(await empty_db("points"))
    yield database
    await database.dispose()


@pytest.fixture
def tables() -> dict[str, object]:
    return dict(Base.metadata.tables)
