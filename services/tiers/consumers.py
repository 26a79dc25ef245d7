"""Events the tiers service consumes: members (to know them), purchases and refunds (spend), and the points
of purchases (for the points basis)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers import service
from shared import events
from shared.consumer import Handler
from shared.events import Envelope, EventData, Topic

TOPICS = [Topic.MEMBERS, Topic.PURCHASES, Topic.POINTS]


async def on_member(session: AsyncSession, _: Envelope, data: EventData) -> None:
    assert isinstance(data, events.MemberEnrolled)  # member.updated is a subclass
    await service.record_member(session, data)


async def on_purchase_recorded(session: AsyncSession, _: Envelope, data: EventData) -> None:
    assert isinstance(data, events.PurchaseRecorded)
    await service.record_purchase(session, data)


async def on_purchase_refunded(session: AsyncSession, _: Envelope, data: EventData) -> None:
    assert isinstance(data, events.PurchaseRefunded)
    await service.record_refund(session, data)


async def on_points_earned(session: AsyncSession, _: Envelope, data: EventData) -> None:
    assert isinstance(data, events.PointsEarned)
    await service.record_points_earned(session, data)


async def on_points_reversed(session: AsyncSession, _: Envelope, data: EventData) -> None:
    assert isinstance(data, events.PointsReversed)
    await service.record_points_reversed(session, data)


HANDLERS: dict[str, Handler] = {
    events.MemberEnrolled.TYPE: on_member,
    events.MemberUpdated.TYPE: on_member,
    events.PurchaseRecorded.TYPE: on_purchase_recorded,
    events.PurchaseRefunded.TYPE: on_purchase_refunded,
    events.PointsEarned.TYPE: on_points_earned,
    events.PointsReversed.TYPE: on_points_reversed,
}
