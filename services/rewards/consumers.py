"""Events the rewards service consumes: points' answers to redemptions (confirm or reject), and what it keeps
of members (status, tier, available points) and of the tier ladder for the catalog's checks."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards import service
from shared import events
from shared.consumer import Handler
from shared.events import Envelope, EventData, Topic

TOPICS = [Topic.POINTS, Topic.TIERS, Topic.MEMBERS]


async def on_points_spent(session: AsyncSession, _: Envelope, data: EventData) -> None:
    assert isinstance(data, events.PointsSpent)
    await service.confirm_redemption(session, data)


async def on_spend_declined(session: AsyncSession, _: Envelope, data: EventData) -> None:
    assert isinstance(data, events.PointsSpendDeclined)
    await service.reject_redemption(session, data)


async def on_balance_changed(session: AsyncSession, _: Envelope, data: EventData) -> None:
    assert isinstance(data, events.PointsEvent)
    await service.record_balance(session, data.member_id, data.balance.available)


async def on_member(session: AsyncSession, _: Envelope, data: EventData) -> None:
    assert isinstance(data, events.MemberEnrolled)
    await service.record_member(session, data)


async def on_tier_changed(session: AsyncSession, _: Envelope, data: EventData) -> None:
    assert isinstance(data, events.TierChanged)
    await service.apply_tier_change(session, data)


HANDLERS: dict[str, Handler] = {
    events.PointsSpent.TYPE: on_points_spent,
    events.PointsSpendDeclined.TYPE: on_spend_declined,
    **{cls.TYPE: on_balance_changed for cls in (
        events.PointsEarned, events.PointsRefunded, events.PointsReversed, events.PointsExpired,
        events.PointsAdjusted, events.PointsTransferred,
    )},
    events.MemberEnrolled.TYPE: on_member,
    events.MemberUpdated.TYPE: on_member,
    events.TierChanged.TYPE: on_tier_changed,
}
