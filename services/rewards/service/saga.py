"""What the steps of the redemption saga share: the outbox its events go to, the event a redemption becomes,
the stock a rejection or a cancellation gives back, and the signals that announce a commit.

Its own module so that the use cases emitting the signals (``redemptions``, ``settlement``) and the code
subscribing to them (``waiting``) import them from below, without an import cycle.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards import schemas
from services.rewards.models import Base, Redemption, outbox
from shared.messaging import events
from shared.messaging.outbox import Outbox
from shared.signals import Signal

SOURCE = "rewards"
OUTBOX = Outbox(outbox, SOURCE)
REWARDS = Base.metadata.tables["reward"]
REDEMPTIONS = Base.metadata.tables["redemption"]
# After the commit, for the requests of this process that wait on a redemption (``waiting``):
REQUESTED: Signal[str] = Signal("redemption requested")  # created, pending
SETTLED: Signal[list[schemas.Redemption]] = Signal("redemptions settled")  # confirmed or rejected


def redemption_event(redemption: Redemption | schemas.Redemption, cls: type[events.RedemptionEvent],
                     **fields: Any) -> events.RedemptionEvent:
    return cls(member_id=redemption.member_id, redemption_id=redemption.redemption_id,
               reward_id=redemption.reward_id, quantity=redemption.quantity, points_cost=redemption.points_cost,
               **fields)


async def give_back_stock(session: AsyncSession, units: dict[str, int]) -> None:
    """Units come back to limited rewards (``domain.restock``, in one statement per reward, in reward order
    so that two transactions lock rewards in the same order). An unlimited reward's row is not locked."""
    left = REWARDS.c.stock_left
    for reward_id in sorted(units):
        back = left + units[reward_id]
        await session.execute(
            update(REWARDS).where(REWARDS.c.reward_id == reward_id, left.is_not(None), REWARDS.c.stock.is_not(None))
            .values(stock_left=case((back > REWARDS.c.stock, REWARDS.c.stock), else_=back))
        )
