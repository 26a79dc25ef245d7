"""Events the points service consumes: tier changes (earning multiplier) and redemptions (debit, refund)."""

from __future__ import annotations

from services.points.service import projections, redemptions
from shared.messaging import events
from shared.messaging.consumer import BatchHandler, Handler, handle, handle_many
from shared.messaging.events import Topic

# loyalty.members also carries points' own member.enrolled/updated: without a handler, they are skipped.
TOPICS = [Topic.TIERS, Topic.REDEMPTIONS, Topic.MEMBERS]

HANDLERS: dict[str, Handler] = {
    **handle(projections.apply_tier_change, events.TierChanged),
    **handle(projections.apply_segment_change, events.MemberSegmentChanged),
    **handle(redemptions.pay_redemption, events.RedemptionRequested),
    **handle(redemptions.refund_redemption, events.RedemptionCancelled),
}

# Redemptions asked for side by side (or a backlog of them) are paid a consumer batch at a time.
BATCH_HANDLERS: dict[str, BatchHandler] = handle_many(redemptions.pay_redemptions, events.RedemptionRequested)
