"""Events the tiers service consumes: members (to know them), purchases and refunds (spend, segments), the
points events (the points of purchases for the points basis; every balance for the points liability; the
points issued, spent and expired per week) and redemptions (the dashboard's top rewards).

``USE_CASES`` names the use case of each type; the live consumer calls it at the wall clock's time, the
rebuild (ops/rebuild.py) at the time the event was written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers.service import members, points, projections, purchases
from shared.messaging import events
from shared.messaging.consumer import BatchHandler, Handler, handle, handle_many
from shared.messaging.events import EventData, Topic

TOPICS = [Topic.MEMBERS, Topic.PURCHASES, Topic.POINTS, Topic.REDEMPTIONS]


class UseCase(Protocol):
    async def __call__(self, session: AsyncSession, data: Any, *, now: datetime | None = None) -> None: ...


USE_CASES: dict[type[EventData], UseCase] = {
    events.MemberEnrolled: members.record_member,
    events.MemberUpdated: members.record_member,
    events.PurchaseRecorded: purchases.record_purchase,
    events.PurchaseRefunded: purchases.record_refund,
    events.PointsEarned: points.record_points_earned,
    events.PointsReversed: points.record_points_reversed,
    events.PointsSpent: points.record_points_moved,
    events.PointsRefunded: points.record_points_moved,
    events.PointsExpired: points.record_points_moved,
    events.PointsAdjusted: points.record_points_moved,
    events.PointsTransferred: points.record_points_moved,
    events.PointsHeld: points.record_points_moved,
    events.PointsReleased: points.record_points_moved,
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
    **handle_many(purchases.record_purchases, events.PurchaseRecorded),
    **handle_many(points.record_points_earned_batch, events.PointsEarned),
    **handle_many(points.record_points_moved_batch, events.PointsSpent, events.PointsExpired,
                  events.PointsRefunded, events.PointsAdjusted, events.PointsTransferred, events.PointsHeld,
                  events.PointsReleased),
}
