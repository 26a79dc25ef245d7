"""Events the tiers service consumes: members (to know them), purchases and refunds (spend, segments), and
the points events (the points of purchases for the points basis; every balance for the points liability).

``USE_CASES`` names the use case of each type; the live consumer calls it at the wall clock's time, the
rebuild (rebuild.py) at the time the event was written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers import service
from shared import events
from shared.consumer import Handler, handle
from shared.events import EventData, Topic

TOPICS = [Topic.MEMBERS, Topic.PURCHASES, Topic.POINTS]


class UseCase(Protocol):
    async def __call__(self, session: AsyncSession, data: Any, *, now: datetime | None = None) -> None: ...


USE_CASES: dict[type[EventData], UseCase] = {
    events.MemberEnrolled: service.record_member,
    events.MemberUpdated: service.record_member,
    events.PurchaseRecorded: service.record_purchase,
    events.PurchaseRefunded: service.record_refund,
    events.PointsEarned: service.record_points_earned,
    events.PointsReversed: service.record_points_reversed,
    events.PointsSpent: service.record_points_balance,
    events.PointsRefunded: service.record_points_balance,
    events.PointsExpired: service.record_points_balance,
    events.PointsAdjusted: service.record_points_balance,
    events.PointsTransferred: service.record_points_balance,
}

HANDLERS: dict[str, Handler] = {
    event_type.TYPE: handler
    for event_type, use_case in USE_CASES.items()
    for handler in handle(use_case, event_type).values()
}
