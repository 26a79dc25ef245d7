"""The event contract: the envelope, one pydantic model per event type, and the topic each type goes to.

Every message is keyed by member id so that all events about one member are handled in order. Personal
data (e-mail, phone, name) never leaves the points service: other services get ids, status, birth month.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from shared.clock import utcnow

# Bounds of every figure an event carries, so no event a consumer believes can overflow the columns it
# writes to (64-bit integers, NUMERIC(20, 4)) however many of them are added up.
MAX_POINTS = 10**15
Points = Annotated[int, Field(ge=-MAX_POINTS, le=MAX_POINTS)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]
Amount = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=4, allow_inf_nan=False)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
Label = Annotated[str, StringConstraints(max_length=64)]
Text = Annotated[str, StringConstraints(max_length=1000)]
Moment = AwareDatetime


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
    """Base of every event payload; ``TYPE``, ``TOPIC`` and ``SOURCE`` (the service that produces it) tie it to
    the contract table. Consumers believe an event only on its topic and from its source."""

    model_config = ConfigDict(extra="ignore")
    TYPE: ClassVar[str]
    TOPIC: ClassVar[Topic]
    SOURCE: ClassVar[str]

    member_id: Id

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
    available: Points
    pending: Points
    held: Points = Field(0, description="Out of `available` in holds of the checkout, still owed until captured")


# --- loyalty.members ---------------------------------------------------------------------------------


class MemberEnrolled(EventData):
    TYPE = "member.enrolled"
    TOPIC = Topic.MEMBERS
    SOURCE = "points"
    status: Literal["active", "suspended", "closed"]
    enrolled_at: Moment
    birth_month: int | None = Field(None, ge=1, le=12)
    referred_by: Id | None = None


class MemberUpdated(MemberEnrolled):
    TYPE = "member.updated"


# --- loyalty.purchases -------------------------------------------------------------------------------


class PurchaseRecorded(EventData):
    TYPE = "purchase.recorded"
    TOPIC = Topic.PURCHASES
    SOURCE = "points"
    purchase_id: Id
    store_id: Label | None = None
    channel: Label | None = None
    occurred_at: Moment
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    total: Amount
    points_earned: Points


class PurchaseRefunded(EventData):
    TYPE = "purchase.refunded"
    TOPIC = Topic.PURCHASES
    SOURCE = "points"
    purchase_id: Id
    refund_id: Id
    occurred_at: Moment
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    amount: Amount
    points_reversed: Points
    purchase_occurred_at: Moment | None = Field(
        None, description="When the refunded purchase happened, so a rolling window can subtract it."
    )


# --- loyalty.points ----------------------------------------------------------------------------------


class PointsEvent(EventData):
    TOPIC = Topic.POINTS
    SOURCE = "points"
    points: Points
    balance: BalanceSnapshot


class PointsEarned(PointsEvent):
    TYPE = "points.earned"
    kind: Literal["earn", "bonus"] = Field(
        "earn", description="earn: a purchase's own points; bonus: an enrollment or referral bonus, whose "
                            "purchase_id (for a referral, of either side) is the referred member's purchase")
    rule_ids: list[Label] | None = Field(None, max_length=100)
    purchase_id: Id | None = None
    status: Literal["credited", "pending"] = "credited"
    occurred_at: Moment | None = None


class PointsSpent(PointsEvent):
    """Points paid: for a catalog reward (``redemption_id``) or at the checkout, a captured hold (``hold_id``)."""

    TYPE = "points.spent"
    redemption_id: Id | None = None
    hold_id: Id | None = None


class PointsSpendDeclined(EventData):
    TYPE = "points.spend_declined"
    TOPIC = Topic.POINTS
    SOURCE = "points"
    redemption_id: Id
    points: Points
    reason: Literal["insufficient-points", "member-not-found", "member-inactive"]


class PointsRefunded(PointsEvent):
    """Points given back: a cancelled redemption's (``redemption_id``), or the points-paid share of a refunded
    purchase (``hold_id``, ``purchase_id`` and ``refund_id``)."""

    TYPE = "points.refunded"
    redemption_id: Id | None = None
    hold_id: Id | None = None
    purchase_id: Id | None = None
    refund_id: Id | None = None


class PointsHeld(PointsEvent):
    """Points set aside by a hold of the checkout: out of ``available``, into ``held``, in no ledger entry yet."""

    TYPE = "points.held"
    hold_id: Id
    expires_at: Moment


class PointsReleased(PointsEvent):
    """Held points back in ``available``: a hold voided, expired, or the part of a capture not taken."""

    TYPE = "points.released"
    hold_id: Id
    reason: Literal["voided", "expired", "captured"]


class PointsReversed(PointsEvent):
    TYPE = "points.reversed"
    purchase_id: Id
    refund_id: Id
    kind: Literal["earn", "bonus"] = Field(
        "earn", description="earn: the refund took back points the purchase earned (its member's); bonus: a full "
                            "refund took back a referral bonus the purchase gave, to its member or to the referrer "
                            "(whose event names the referred member's purchase), beside the refund's own event")


class PointsExpired(PointsEvent):
    TYPE = "points.expired"


class PointsExpiring(PointsEvent):
    """A reminder, ``expiry_reminder_days`` (program setting) before a lot of points expires: ``points`` is what
    is left of the lot, ``expires_at`` when it goes. Sent once per lot; the balance is unchanged by it."""

    TYPE = "points.expiring"
    expires_at: Moment
    earned_at: Moment


class PointsAdjusted(PointsEvent):
    TYPE = "points.adjusted"
    adjustment_id: Id
    reason: Text
    actor: Label


class PointsTransferred(PointsEvent):
    TYPE = "points.transferred"
    transfer_id: Id
    to_member_id: Id
    direction: Literal["out", "in"]


class GoalReached(EventData):
    """A member reached a goal rule's target in one of its periods (settled once per member and period). Its
    reward is points (``points``, credited by points in the same transaction) or a catalog reward
    (``reward_id``), which rewards issues as a free redemption with a voucher, ``redemption_id`` = ``goal_id``."""

    TYPE = "goal.reached"
    TOPIC = Topic.POINTS
    SOURCE = "points"
    goal_id: Id = Field(description="The settlement's id, `goal-` and a hash of rule, member and period: the "
                                    "same settlement always has the same id, and no two have one")
    rule_id: Id
    period: Label = Field(description="`2027-01`, `2027-Q1`, `2027` or `rolling-<n>` (the n-th card filled)")
    metric: Literal["spend", "purchases"]
    progress: Amount
    target: Amount
    points: Points = Field(0, description="Points the goal gave (its points, or its rebate of the period's spend)")
    reward_id: Id | None = Field(None, description="The catalog reward rewards issues for free, if the goal gives one")


# --- loyalty.redemptions -----------------------------------------------------------------------------


class RedemptionEvent(EventData):
    TOPIC = Topic.REDEMPTIONS
    SOURCE = "rewards"
    redemption_id: Id
    reward_id: Id
    quantity: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    points_cost: Annotated[int, Field(ge=0, le=MAX_POINTS)]


class RedemptionRequested(RedemptionEvent):
    TYPE = "redemption.requested"


class RedemptionConfirmed(RedemptionEvent):
    TYPE = "redemption.confirmed"


class RedemptionRejected(RedemptionEvent):
    TYPE = "redemption.rejected"
    reason: Label


class RedemptionCancelled(RedemptionEvent):
    TYPE = "redemption.cancelled"


# --- loyalty.tiers -----------------------------------------------------------------------------------


class TierChanged(EventData):
    TYPE = "tier.changed"
    TOPIC = Topic.TIERS
    SOURCE = "tiers"
    from_tier: Id | None
    to_tier: Id
    rank: int = Field(ge=0, le=1000, description="Position of to_tier in the tier list, 0 for the lowest.")
    ladder: list[Id] = Field(default_factory=list, max_length=1000,
                             description="All tier ids, lowest first, at the time.")
    earn_multiplier: Decimal = Field(gt=0, max_digits=8, decimal_places=4, allow_inf_nan=False)
    reason: Label = Field(description="enrolled, upgrade, downgrade or tiers-changed; from_tier == to_tier means "
                                    "the tier's terms (multiplier, ladder) changed, not the member's tier")
    at: Moment


class RfmScores(BaseModel):
    recency: int = Field(ge=1, le=5)
    frequency: int = Field(ge=1, le=5)
    monetary: int = Field(ge=1, le=5)


class MemberSegmentChanged(EventData):
    """Produced by tiers on loyalty.members when a member's value class or lifecycle changes."""

    TYPE = "member.segment_changed"
    TOPIC = Topic.MEMBERS
    SOURCE = "tiers"
    value_class: Literal["A", "B", "C", "D"]
    lifecycle: Literal["new", "active", "at_risk", "lapsed", "won_back"]
    previous_value_class: Literal["A", "B", "C", "D"] | None = Field(
        None, description="None the first time the member is segmented")
    previous_lifecycle: Literal["new", "active", "at_risk", "lapsed", "won_back"] | None = None
    rfm: RfmScores
    at: Moment


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.TYPE: cls
    for cls in (
        MemberEnrolled, MemberUpdated, PurchaseRecorded, PurchaseRefunded, PointsEarned, PointsSpent,
        PointsSpendDeclined, PointsRefunded, PointsReversed, PointsExpiring, PointsExpired, PointsAdjusted,
        PointsTransferred, PointsHeld, PointsReleased, RedemptionRequested, RedemptionConfirmed, RedemptionRejected,
        RedemptionCancelled, TierChanged, MemberSegmentChanged, GoalReached,
    )
}


assert all(isinstance(getattr(cls, "SOURCE", None), str) for cls in EVENT_TYPES.values()), "a type without producer"


def parse_data(envelope: Envelope) -> EventData:
    """The typed payload of an envelope; raises KeyError for unknown types, ValidationError for bad data."""
    return EVENT_TYPES[envelope.type].model_validate(envelope.data)
