"""The event contract: the envelope, one pydantic model per event type, and the topic each type goes to.

Every message is keyed by member id so that all events about one member are handled in order. Personal
data (e-mail, phone, name) never leaves the points service: other services get ids, status, birth month.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.clock import utcnow


class Topic(StrEnum):
    MEMBERS = "loyalty.members"
    PURCHASES = "loyalty.purchases"
    POINTS = "loyalty.points"
    REDEMPTIONS = "loyalty.redemptions"
    TIERS = "loyalty.tiers"


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    version: int = 1
    correlation_id: str | None = None
    data: dict[str, Any]


class EventData(BaseModel):
    """Base of every event payload; ``TYPE`` and ``TOPIC`` tie it to the contract table."""

    model_config = ConfigDict(extra="ignore")
    TYPE: ClassVar[str]
    TOPIC: ClassVar[Topic]

    member_id: str

    def envelope(self, source: str, correlation_id: str | None = None) -> Envelope:
        return Envelope(
            id=str(uuid.uuid4()),
            type=self.TYPE,
            source=source,
            subject=self.member_id,
            time=utcnow(),
            correlation_id=correlation_id,
            data=self.model_dump(mode="json"),
        )


class BalanceSnapshot(BaseModel):
    available: int
    pending: int


# --- loyalty.members ---------------------------------------------------------------------------------


class MemberEnrolled(EventData):
    TYPE = "member.enrolled"
    TOPIC = Topic.MEMBERS
    status: Literal["active", "suspended", "closed"]
    enrolled_at: datetime
    birth_month: int | None = None
    referred_by: str | None = None


class MemberUpdated(MemberEnrolled):
    TYPE = "member.updated"


# --- loyalty.purchases -------------------------------------------------------------------------------


class PurchaseRecorded(EventData):
    TYPE = "purchase.recorded"
    TOPIC = Topic.PURCHASES
    purchase_id: str
    store_id: str | None = None
    channel: str | None = None
    occurred_at: datetime
    currency: str
    total: Decimal
    points_earned: int


class PurchaseRefunded(EventData):
    TYPE = "purchase.refunded"
    TOPIC = Topic.PURCHASES
    purchase_id: str
    refund_id: str
    occurred_at: datetime
    currency: str
    amount: Decimal
    points_reversed: int
    purchase_occurred_at: datetime | None = Field(
        None, description="When the refunded purchase happened, so a rolling window can subtract it."
    )


# --- loyalty.points ----------------------------------------------------------------------------------


class PointsEvent(EventData):
    TOPIC = Topic.POINTS
    points: int
    balance: BalanceSnapshot


class PointsEarned(PointsEvent):
    TYPE = "points.earned"
    kind: Literal["earn", "bonus"] = Field(
        "earn", description="earn: a purchase's own points; bonus: an enrollment or referral bonus, whose "
                            "purchase_id (for a referral) is the referred member's purchase")
    rule_ids: list[str] | None = None
    purchase_id: str | None = None
    status: Literal["credited", "pending"] = "credited"
    occurred_at: datetime | None = None


class PointsSpent(PointsEvent):
    TYPE = "points.spent"
    redemption_id: str


class PointsSpendDeclined(EventData):
    TYPE = "points.spend_declined"
    TOPIC = Topic.POINTS
    redemption_id: str
    points: int
    reason: Literal["insufficient-points", "member-not-found", "member-inactive"]


class PointsRefunded(PointsEvent):
    TYPE = "points.refunded"
    redemption_id: str


class PointsReversed(PointsEvent):
    TYPE = "points.reversed"
    purchase_id: str
    refund_id: str


class PointsExpired(PointsEvent):
    TYPE = "points.expired"


class PointsAdjusted(PointsEvent):
    TYPE = "points.adjusted"
    adjustment_id: str
    reason: str
    actor: str


class PointsTransferred(PointsEvent):
    TYPE = "points.transferred"
    transfer_id: str
    to_member_id: str
    direction: Literal["out", "in"]


# --- loyalty.redemptions -----------------------------------------------------------------------------


class RedemptionEvent(EventData):
    TOPIC = Topic.REDEMPTIONS
    redemption_id: str
    reward_id: str
    quantity: int = 1
    points_cost: int


class RedemptionRequested(RedemptionEvent):
    TYPE = "redemption.requested"


class RedemptionConfirmed(RedemptionEvent):
    TYPE = "redemption.confirmed"


class RedemptionRejected(RedemptionEvent):
    TYPE = "redemption.rejected"
    reason: str


class RedemptionCancelled(RedemptionEvent):
    TYPE = "redemption.cancelled"


# --- loyalty.tiers -----------------------------------------------------------------------------------


class TierChanged(EventData):
    TYPE = "tier.changed"
    TOPIC = Topic.TIERS
    from_tier: str | None
    to_tier: str
    rank: int = Field(description="Position of to_tier in the tier list, 0 for the lowest.")
    ladder: list[str] = Field(default_factory=list, description="All tier ids, lowest first, at the time.")
    earn_multiplier: Decimal
    reason: str = Field(description="enrolled, upgrade, downgrade or tiers-changed; from_tier == to_tier means "
                                    "the tier's terms (multiplier, ladder) changed, not the member's tier")
    at: datetime


class RfmScores(BaseModel):
    recency: int = Field(ge=1, le=5)
    frequency: int = Field(ge=1, le=5)
    monetary: int = Field(ge=1, le=5)


class MemberSegmentChanged(EventData):
    """Produced by tiers on loyalty.members when a member's value class or lifecycle changes."""

    TYPE = "member.segment_changed"
    TOPIC = Topic.MEMBERS
    value_class: Literal["A", "B", "C", "D"]
    lifecycle: Literal["new", "active", "at_risk", "lapsed", "won_back"]
    previous_value_class: Literal["A", "B", "C", "D"] | None = Field(
        None, description="None the first time the member is segmented")
    previous_lifecycle: Literal["new", "active", "at_risk", "lapsed", "won_back"] | None = None
    rfm: RfmScores
    at: datetime


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.TYPE: cls
    for cls in (
        MemberEnrolled, MemberUpdated, PurchaseRecorded, PurchaseRefunded, PointsEarned, PointsSpent,
        PointsSpendDeclined, PointsRefunded, PointsReversed, PointsExpired, PointsAdjusted,
        PointsTransferred, RedemptionRequested, RedemptionConfirmed, RedemptionRejected,
        RedemptionCancelled, TierChanged, MemberSegmentChanged,
    )
}


def parse_data(envelope: Envelope) -> EventData:
    """The typed payload of an envelope; raises KeyError for unknown types, ValidationError for bad data."""
    return EVENT_TYPES[envelope.type].model_validate(envelope.data)
