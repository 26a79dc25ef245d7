"""Waiting for a redemption to settle (``GET /v1/redemptions/{id}?wait=S``) without polling the database hard.

The use cases that settle a redemption mark it in ``session.info`` (``service.SETTLED``); once their
transaction commits, a ``Database.after_commit`` callback wakes the requests waiting on it in this process. A
waiter also re-reads the row every ``RECHECK_SECONDS``, so a settlement made by another instance is seen too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards import schemas, service
from shared.db import Database

RECHECK_SECONDS = 0.25


class Settlements:
    """The requests waiting in this process, by redemption id."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._waiters: dict[str, set[asyncio.Event]] = {}
        db.after_commit(self._after_commit)

    def _after_commit(self, session: AsyncSession) -> None:
        for redemption_id in session.info.pop(service.SETTLED, ()):
            for waiter in self._waiters.get(redemption_id, ()):
                waiter.set()

    @contextlib.contextmanager
    def _watch(self, redemption_id: str) -> Iterator[asyncio.Event]:
        waiter = asyncio.Event()
        self._waiters.setdefault(redemption_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters[redemption_id]
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[redemption_id]

    async def redemption(self, redemption_id: str, wait: float = 0.0) -> schemas.Redemption:
        """The redemption as soon as it is no longer pending, or as it is after ``wait`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        # Watching before the first read: a settlement committed in between still wakes this request.
        with self._watch(redemption_id) as waiter:
            while True:
                async with self.db.read() as session:
                    found = service.redemption_out(await service.get_redemption(session, redemption_id))
                left = deadline - loop.time()
                if found.status != "pending" or left <= 0:
                    return found
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.wait(), min(RECHECK_SECONDS, left))
                waiter.clear()
