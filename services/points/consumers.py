"""Events the points service consumes: tier changes (earning multiplier) and redemptions (debit, refund)."""

from __future__ import annotations

from services.points import service
from shared import events
from shared.consumer import Handler, handle
from shared.events import Topic

TOPICS = [Topic.TIERS, Topic.REDEMPTIONS]

HANDLERS: dict[str, Handler] = {
    **handle(service.apply_tier_change, events.TierChanged),
    **handle(service.pay_redemption, events.RedemptionRequested),
    **handle(service.refund_redemption, events.RedemptionCancelled),
}
