"""Scheduled work of the rewards service: asking points again for redemptions whose answer is overdue.

A pending redemption holds stock until points answers. The first ``redemption.requested`` can go missing for
reasons rewards cannot see (points down or far behind, a request dead-lettered by points, a topic recreated),
so rewards asks again, with the same redemption id, until an answer comes. Points keeps its answer to every
redemption id it has seen (``RedemptionDebit``) and gives the same answer to a repeated request without
paying twice, and rewards settles a redemption only while it is pending; so asking again is always safe.

Why asking again forever, and never giving up with a ``timeout`` rejection: rewards cannot know whether a
request it has not heard back about was paid. Points may be about to handle it (its consumer stopped, a
backlog, a rebalance) and then takes the points. A redemption rejected by rewards in the meantime would have
released its stock and shown the member "rejected" while the points were gone with no voucher. Undoing that
late payment (a ``redemption.cancelled`` for a redemption that was never confirmed) would put a spend and a
refund in the member's ledger, give the refunded points a new expiry date, and add a meaning to the contract's
events that other consumers do not expect. Only an answer from points settles a redemption; a points service
that never answers is an outage to fix (the warning below and ``loyalty_redemptions_reasked_total`` show it),
not something to paper over with a guess.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from prometheus_client import Counter

from services.rewards.service import settlement
from services.rewards.settings import DEFAULT_RETRY_MAX_SECONDS, DEFAULT_RETRY_SECONDS, Settings
from shared.clock import utcnow
from shared.context import correlation_id
from shared.db.database import Database
from shared.runtime import Runtime

log = logging.getLogger(__name__)

REASK_EVERY_SECONDS = 2.0
BATCH_SIZE = 500
REASKED = Counter("loyalty_redemptions_reasked_total",
                  "redemption.requested written again because points' answer was overdue")


async def reask_stale(
    db: Database, *, now: datetime | None = None, retry_seconds: float = DEFAULT_RETRY_SECONDS,
    retry_max_seconds: float = DEFAULT_RETRY_MAX_SECONDS, batch_size: int = BATCH_SIZE,
) -> int:
    """Writes another ``redemption.requested`` for every pending redemption whose answer is overdue, one
    transaction per batch; returns how many were asked again.

    Overdue means: no answer ``retry_seconds`` after the first ask, then twice as long after each further ask,
    never longer than ``retry_max_seconds`` (a points outage of hours costs a few dozen asks per redemption,
    not hundreds). Safe to run twice and in several instances at once: the rows are locked with ``SKIP
    LOCKED``, so each overdue redemption is asked once by whoever locks it, and an ask moves its
    ``last_requested_at`` so it is not overdue any more.
    """
    moment = now or utcnow()
    total = 0
    most = 0
    token = correlation_id.set(str(uuid.uuid4()))  # the events of one run are traced together
    try:
        while True:
            async with db.transaction() as session:
                asked = await settlement.reask_overdue(session, now=moment, retry_seconds=retry_seconds,
                                                       retry_max_seconds=retry_max_seconds, limit=batch_size)
                most = max([most, *(r.asks for r in asked)])
            total += len(asked)
            if len(asked) < batch_size:
                break
    finally:
        correlation_id.reset(token)
    if total:
        REASKED.inc(total)
        log.warning("points has not answered %d pending redemptions in time: asked again (up to %d asks "
                    "for one)", total, most)
    return total


async def reask_redemptions(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    await reask_stale(runtime.db, retry_seconds=settings.redemption_retry_seconds,
                      retry_max_seconds=settings.redemption_retry_max_seconds)
