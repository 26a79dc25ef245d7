"""Events the rewards service consumes: points' answers to redemptions (confirm or reject), and what it keeps
of members (status, tier, available points) and of the tier ladder for the catalog's checks."""

from __future__ import annotations

from services.rewards import service
from shared import events
from shared.consumer import Handler, handle
from shared.events import Topic

TOPICS = [Topic.POINTS, Topic.TIERS, Topic.MEMBERS]

HANDLERS: dict[str, Handler] = {
    **handle(service.confirm_redemption, events.PointsSpent),
    **handle(service.reject_redemption, events.PointsSpendDeclined),
    **handle(service.record_points_event, events.PointsEarned, events.PointsRefunded, events.PointsReversed,
             events.PointsExpired, events.PointsAdjusted, events.PointsTransferred),
    **handle(service.record_member, events.MemberEnrolled, events.MemberUpdated),
    **handle(service.apply_tier_change, events.TierChanged),
}
