"""Events the tiers service consumes: members (to know them), purchases and refunds (spend, segments), the
points events (the points of purchases for the points basis; every balance for the points liability; the
points issued, spent and expired per week) and redemptions (the dashboard's top rewards).

``USE_CASES`` names the use case of each type; the live consumer calls it at the wall clock's time, the
rebuild (rebuild.py) at the time the event was written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers import points_events, projections, service
from shared.messaging import events
from shared.messaging.consumer import BatchHandler, Handler, handle, handle_many
from shared.messaging.events import EventData, Topic

TOPICS = [Topic.MEMBERS, Topic.PURCHASES, Topic.POINTS, Topic.REDEMPTIONS]


class UseCase(Protocol):
    async def __call__(self, session: AsyncSession, data: Any, *, now: datetime | None = None) -> None: ...


def together(*use_cases: UseCase) -> UseCase:
    """One event handled by several use cases in turn, in the event's one transaction."""

    async def use_case(session: AsyncSession, data: Any, *, now: datetime | None = None) -> None:
        for each in use_cases:
            await each(session, data, now=now)

    return use_case


USE_CASES: dict[type[EventData], UseCase] = {
    events.MemberEnrolled: service.record_member,
    events.MemberUpdated: service.record_member,
    events.PurchaseRecorded: service.record_purchase,
    events.PurchaseRefunded: service.record_refund,
    events.PointsEarned: together(service.record_points_earned, projections.record_points_moved),
    events.PointsReversed: service.record_points_reversed,
    events.PointsSpent: together(service.record_points_balance, projections.record_points_moved),
    events.PointsRefunded: service.record_points_balance,
    events.PointsExpired: together(service.record_points_balance, projections.record_points_moved),
    events.PointsAdjusted: service.record_points_balance,
    events.PointsTransferred: service.record_points_balance,
    events.RedemptionConfirmed: projections.record_redemption,
    events.RedemptionCancelled: projections.record_redemption,
}

HANDLERS: dict[str, Handler] = {
    event_type.TYPE: handler
    for event_type, use_case in USE_CASES.items()
    for handler in handle(use_case, event_type).values()
}

# A backlog of purchases (a consumer catching up, a POS batch) is settled member by member once per batch,
# and the points events that come with every purchase and redemption are kept a batch at a time too.
BATCH_HANDLERS: dict[str, BatchHandler] = {
    **handle_many(service.record_purchases, events.PurchaseRecorded),
    **handle_many(points_events.record_points_earned, events.PointsEarned),
    **handle_many(points_events.record_points_moved, events.PointsSpent, events.PointsExpired,
                  events.PointsRefunded, events.PointsAdjusted, events.PointsTransferred),
}
