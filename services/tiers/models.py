"""Tables of the tiers service: the tier program, each member's standing and history, and the purchase
facts (per purchase and per refund) that the qualifying value of the rolling window is computed from; each
member's segment, the last segmentation run and the points balances known from ``points.*`` events.

Facts are keyed by the ids the points service gave them (``purchase_id``, ``refund_id``) and written by
setting values, never by adding to them, so a repeated event with a new event id cannot count twice.
A purchase's refunded amount and reversed points are the sums of its ``refund`` rows. The dashboard's
projections are the redemptions per reward (set the same way) and the points per week, which are added to:
expiries carry no id to key them by, so there the inbox alone keeps an event from counting twice.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, Numeric, SmallInteger, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.audit import audit_table
from shared.db.types import Money, UTCDateTime, new_metadata
from shared.messaging.consumer import inbox_table
from shared.messaging.outbox import outbox_table

BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = new_metadata()


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
audit = audit_table(Base.metadata)


class TierProgram(Base):
    """How members qualify: one row, id 1. No row (or no tiers) means the default program."""

    __tablename__ = "tier_program"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    basis: Mapped[str] = mapped_column(String(16))
    window_days: Mapped[int] = mapped_column(Integer)
    retention_days: Mapped[int] = mapped_column(Integer)
    downgrade: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: the defaults, never PUT
    updated_by: Mapped[str | None] = mapped_column(String(64))


class Tier(Base):
    """One rung of the ladder; ``position`` 0 is the lowest."""

    __tablename__ = "tier"
    tier_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, unique=True)
    name: Mapped[str] = mapped_column(String(100))
    threshold: Mapped[Decimal] = mapped_column(Money)
    earn_multiplier: Mapped[Decimal] = mapped_column(Numeric(8, 4))
    perks: Mapped[list[str]] = mapped_column(JSON)


class Member(Base):
    """A member as tiers knows them (from ``member.*`` events or their first purchase) and their tier."""

    __tablename__ = "member"
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str | None] = mapped_column(String(16))
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    tier_id: Mapped[str] = mapped_column(String(64))
    tier_since: Mapped[datetime] = mapped_column(UTCDateTime)
    retained_until: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Purchase(Base):
    """One purchase's facts, from ``purchase.recorded``; ``points.earned`` may confirm its points later."""

    __tablename__ = "purchase"
    purchase_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("member.member_id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    refunded: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    points_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    points_reversed: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (Index("ix_purchase_member_occurred", "member_id", "occurred_at"),)


class Refund(Base):
    """One refund's facts, from ``purchase.refunded`` (amount) and ``points.reversed`` (points); kept even
    when its purchase is not known yet."""

    __tablename__ = "refund"
    refund_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    purchase_id: Mapped[str] = mapped_column(String(64), index=True)
    member_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    points_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TierHistory(Base):
    """Every change of a member's tier, with the reason."""

    __tablename__ = "tier_history"
    entry_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("member.member_id"))
    from_tier: Mapped[str | None] = mapped_column(String(64))
    to_tier: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_tier_history_member_entry", "member_id", "entry_id"),)


class Segment(Base):
    """A member's segment as the last segmentation run (or a purchase since, for ``lifecycle``) left it:
    what ``member.segment_changed`` last announced. See services/tiers/domain/segments.py and
    docs/segments.md."""

    __tablename__ = "segment"
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    recency: Mapped[int] = mapped_column(SmallInteger)
    frequency: Mapped[int] = mapped_column(SmallInteger)
    monetary: Mapped[int] = mapped_column(SmallInteger)
    value_class: Mapped[str] = mapped_column(String(1))
    lifecycle: Mapped[str] = mapped_column(String(16))
    clv_estimate: Mapped[Decimal] = mapped_column(Money)
    revenue: Mapped[Decimal] = mapped_column(Money)  # net revenue in the window, what the class comes from
    purchases: Mapped[int] = mapped_column(Integer)  # counted purchases in the window
    last_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when value_class or lifecycle last changed


class SegmentRun(Base):
    """The last segmentation run (one row, id 1): when, with which settings, and what it found about the
    program as a whole. Its row lock keeps two runs from overlapping."""

    __tablename__ = "segment_run"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: never ran
    window_days: Mapped[int] = mapped_column(Integer)
    recency_days: Mapped[int] = mapped_column(Integer)
    new_days: Mapped[int] = mapped_column(Integer)
    members: Mapped[int] = mapped_column(Integer)
    scored: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[Decimal] = mapped_column(Money)
    top_20pct_revenue_share: Mapped[Decimal | None] = mapped_column(Numeric(6, 5))
    retention_rate: Mapped[Decimal | None] = mapped_column(Numeric(6, 5))
    expected_lifetime_years: Mapped[Decimal] = mapped_column(Numeric(8, 4))


class PointsBalance(Base):
    """Each member's balance as the last ``points.*`` event told it (events of one member come in order);
    the program's points liability is their sum. ``held`` is out of ``available`` in the checkout's holds
    and still owed until captured."""

    __tablename__ = "points_balance"
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    available: Mapped[int] = mapped_column(BigInteger)
    pending: Mapped[int] = mapped_column(BigInteger)
    held: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PointsWeek(Base):
    """The points of one member that moved in one ISO week (``week`` is its Monday, UTC), by kind:
    ``issued`` (earned and bonus points), ``spent`` (redemptions and checkout captures), ``expired``. Added
    to once per event; the inbox makes that once. One row per member, not one per week, so consumers of
    different partitions never wait for each other's rows; the dashboard sums a week's rows."""

    __tablename__ = "points_week"
    week: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger)


class Redemption(Base):
    """A redemption as ``redemption.confirmed`` / ``redemption.cancelled`` left it; only ``confirmed`` ones
    count towards their reward. Set, never added to, so the order of the two cannot count one twice."""

    __tablename__ = "redemption"
    redemption_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64))
    reward_id: Mapped[str] = mapped_column(String(64), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    points_cost: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
