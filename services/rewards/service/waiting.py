"""Waiting for a redemption to settle (``GET /v1/redemptions/{id}?wait=S``) without polling the database hard.

The use cases that settle a redemption announce it once their unit of work commits (``saga.SETTLED``, a
commit hook); the requests waiting on it in this process answer with it without reading it again. For a
settlement made by another instance, the waiting requests are re-checked every ``RECHECK_SECONDS`` by one
query for all of them (not one query per request), made by whichever waiting request's turn comes first.

A client asks for the outcome right after its ``POST`` was answered, when the redemption is still pending.
This process remembers the redemptions it created that it has not seen settled (``saga.REQUESTED``), and a
request waiting on one of them skips the first read: nothing but the wake-up or the re-check can end its wait
early, and a ``pending`` answer is only given after a read at the end of the wait.

Reads are single statements on ``Database.snapshot()`` (autocommit: no BEGIN and COMMIT round trips).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from services.rewards import schemas
from services.rewards.service import redemptions, saga
from shared.db.database import Database

RECHECK_SECONDS = 0.25
REMEMBER_PENDING = 10_000  # created here and not seen settled: the oldest are forgotten beyond this


class Waiter:
    """One waiting request: woken with the redemption once it is settled."""

    __slots__ = ("answer", "woken")

    def __init__(self) -> None:
        self.woken = asyncio.Event()
        self.answer: schemas.Redemption | None = None

    def settle(self, answer: schemas.Redemption) -> None:
        self.answer = answer
        self.woken.set()


class Settlements:
    """The requests waiting in this process, by redemption id."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._waiters: dict[str, set[Waiter]] = {}
        self._pending: dict[str, None] = {}  # insertion-ordered set: ids created here, not seen settled
        self._rechecking = asyncio.Lock()
        self._rechecked_at = float("-inf")
        saga.REQUESTED.subscribe(self._remember_pending)
        saga.SETTLED.subscribe(self._settled)

    def _settled(self, answers: list[schemas.Redemption]) -> None:
        for answer in answers:
            self._wake(answer)

    def _remember_pending(self, redemption_id: str) -> None:
        self._pending[redemption_id] = None
        if len(self._pending) > REMEMBER_PENDING:
            del self._pending[next(iter(self._pending))]

    def _wake(self, answer: schemas.Redemption) -> None:
        """``answer`` is settled (here, or seen settled by a re-check): its waiters get it."""
        self._pending.pop(answer.redemption_id, None)
        for waiter in self._waiters.get(answer.redemption_id, ()):
            waiter.settle(answer)

    @contextlib.contextmanager
    def _watch(self, redemption_id: str) -> Iterator[Waiter]:
        waiter = Waiter()
        self._waiters.setdefault(redemption_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters[redemption_id]
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[redemption_id]

    async def _read(self, redemption_id: str) -> schemas.Redemption:
        async with self.db.snapshot() as conn:
            return await redemptions.read_redemption(conn, redemption_id)

    async def redemption(self, redemption_id: str, wait: float = 0.0) -> schemas.Redemption:
        """The redemption as soon as it is no longer pending, or as it is after ``wait`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        # Watching before the first look: a settlement committed in between still wakes this request.
        with self._watch(redemption_id) as waiter:
            found = None if wait > 0 and redemption_id in self._pending else await self._read(redemption_id)
            while waiter.answer is None and (found is None or found.status == "pending"):
                left = deadline - loop.time()
                if left <= 0:
                    return await self._read(redemption_id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.woken.wait(), min(RECHECK_SECONDS, left))
                if waiter.answer is None and deadline - loop.time() > 0:
                    await self._recheck()
            if waiter.answer is not None:
                return waiter.answer
            assert found is not None  # the loop ends with an answer or with a read that is not pending
            return found

    async def _recheck(self) -> None:
        """One query for every waiting request, at most every ``RECHECK_SECONDS``: a request whose turn comes
        just after another's check relies on that one."""
        loop = asyncio.get_running_loop()
        async with self._rechecking:
            if loop.time() - self._rechecked_at < RECHECK_SECONDS:
                return
            self._rechecked_at = loop.time()
            async with self.db.snapshot() as conn:
                settled = await redemptions.settled_among(conn, list(self._waiters))
        for answer in settled:
            self._wake(answer)
