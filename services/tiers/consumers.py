"""Events the tiers service consumes: members (to know them), purchases and refunds (spend), and the points
of purchases (for the points basis)."""

from __future__ import annotations

from services.tiers import service
from shared import events
from shared.consumer import Handler, handle
from shared.events import Topic

TOPICS = [Topic.MEMBERS, Topic.PURCHASES, Topic.POINTS]

HANDLERS: dict[str, Handler] = {
    **handle(service.record_member, events.MemberEnrolled, events.MemberUpdated),
    **handle(service.record_purchase, events.PurchaseRecorded),
    **handle(service.record_refund, events.PurchaseRefunded),
    **handle(service.record_points_earned, events.PointsEarned),
    **handle(service.record_points_reversed, events.PointsReversed),
}
