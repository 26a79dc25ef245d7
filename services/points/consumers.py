"""Events the points service consumes: tier changes (earning multiplier) and redemption requests (debit)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.points import service
from shared import events
from shared.consumer import Handler
from shared.events import Envelope, EventData, Topic

TOPICS = [Topic.TIERS, Topic.REDEMPTIONS]


async def on_tier_changed(session: AsyncSession, _: Envelope, data: EventData) -> None:
    assert isinstance(data, events.TierChanged)
    await service.apply_tier_change(session, data)


async def on_redemption_requested(session: AsyncSession, _: Envelope, data: EventData) -> None:
    assert isinstance(data, events.RedemptionRequested)
    await service.pay_redemption(session, data)


async def on_redemption_cancelled(session: AsyncSession, _: Envelope, data: EventData) -> None:
    assert isinstance(data, events.RedemptionCancelled)
    await service.refund_redemption(session, data)


HANDLERS: dict[str, Handler] = {
    events.TierChanged.TYPE: on_tier_changed,
    events.RedemptionRequested.TYPE: on_redemption_requested,
    events.RedemptionCancelled.TYPE: on_redemption_cancelled,
}
