"""Events the rewards service consumes: points' answers to redemptions (confirm or reject), the goals points
settles with a catalog reward (given for free), and what it keeps of members (status, tier, available points)
and of the tier ladder for the catalog's checks.

Points' events also have batch handlers: under load the consumer gets answers of many members at once, and
settling them together costs a handful of statements instead of a handful per answer."""

from __future__ import annotations

from services.rewards.service import goals, members, settlement
from shared.messaging import events
from shared.messaging.consumer import BatchHandler, Handler, handle, handle_many
from shared.messaging.events import Topic

TOPICS = [Topic.POINTS, Topic.TIERS, Topic.MEMBERS]

HANDLERS: dict[str, Handler] = {
    **handle(settlement.confirm_redemption, events.PointsSpent),
    **handle(settlement.reject_redemption, events.PointsSpendDeclined),
    **handle(goals.issue_goal_reward, events.GoalReached),
    **handle(members.record_points_event, events.PointsEarned, events.PointsRefunded, events.PointsReversed,
             events.PointsExpired, events.PointsAdjusted, events.PointsTransferred, events.PointsHeld,
             events.PointsReleased),
    **handle(members.record_member, events.MemberEnrolled, events.MemberUpdated),
    **handle(members.apply_tier_change, events.TierChanged),
}

BATCH_HANDLERS: dict[str, BatchHandler] = {
    **handle_many(settlement.confirm_redemptions, events.PointsSpent),
    **handle_many(settlement.reject_redemptions, events.PointsSpendDeclined),
    **handle_many(members.record_points_events, events.PointsEarned, events.PointsRefunded, events.PointsReversed,
                  events.PointsExpired, events.PointsAdjusted, events.PointsTransferred, events.PointsHeld,
                  events.PointsReleased),
    **handle_many(members.apply_tier_changes, events.TierChanged),
}
