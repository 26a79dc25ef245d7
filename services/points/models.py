"""Tables of the points service. A member's balance is stored on the member row and changed in the same
transaction as the ledger entries and lots that justify it, so a balance read is one row."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, Numeric, String, Table, Text, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.audit import audit_table
from shared.db.types import Money, UTCDateTime, new_metadata
from shared.http.idempotency import idempotency_table
from shared.messaging.consumer import inbox_table
from shared.messaging.outbox import outbox_table

# The lots ``points.expiring`` may still be sent about (the reminder job's partial index).
REMINDER_DUE = "remaining > 0 AND reminded_at IS NULL AND NOT pending"

BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = new_metadata()


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
idempotency = idempotency_table(Base.metadata)
audit = audit_table(Base.metadata)


def table_of(model: type[Base]) -> Table:
    """A model's table, typed as a ``Table`` (to the type checker ``__table__`` is only a ``FromClause``)."""
    return model.metadata.tables[model.__tablename__]


class Program(Base):
    """The program's settings: one row, id 1."""

    __tablename__ = "program"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    points_per_unit: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    expiry_days: Mapped[int] = mapped_column(Integer)
    pending_days: Mapped[int] = mapped_column(Integer)
    excluded_categories: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A new random token with every change of the earning rules (see rules.active_rules).
    rules_version: Mapped[str] = mapped_column(String(36), default="", server_default="")
    # Where weekdays, birthdays and periods are read (an IANA name), and the most one purchase may earn.
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    max_points_per_purchase: Mapped[int] = mapped_column(BigInteger, default=10**9, server_default="1000000000")
    # Paying with points (the checkout): what a point is worth, the fewest a hold may take, the largest share
    # of an order points may pay, how long a hold lives, whether the points-paid part of a purchase earns.
    point_value: Mapped[Decimal] = mapped_column(Numeric(18, 6), default=Decimal("0.01"), server_default="0.01")
    min_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    max_share: Mapped[Decimal] = mapped_column(Numeric(5, 4), default=Decimal(1), server_default="1")
    hold_minutes: Mapped[int] = mapped_column(Integer, default=15, server_default="15")
    earn_on_points_paid: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # The referral setting (``schemas.ReferralSettings`` as JSON), null when the program pays no referrals.
    referral: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # How many days before a lot expires points sends ``points.expiring`` about it (0: no reminders).
    expiry_reminder_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Member(Base):
    __tablename__ = "member"
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    birth_date: Mapped[date | None] = mapped_column(Date)
    referred_by: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    tier_id: Mapped[str | None] = mapped_column(String(64))
    earn_multiplier: Mapped[Decimal] = mapped_column(Numeric(8, 4), default=Decimal(1))
    available: Mapped[int] = mapped_column(BigInteger, default=0)
    pending: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_spent: Mapped[int] = mapped_column(BigInteger, default=0)
    # Points set aside by holds of the checkout: out of ``available``, in the hold's reserved lot parts.
    held: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    purchase_count: Mapped[int] = mapped_column(Integer, default=0)
    birthday_bonus_year: Mapped[int | None] = mapped_column(Integer)
    # The member's segment as tiers last told it (member.segment_changed), for the operator's search.
    value_class: Mapped[str | None] = mapped_column(String(1))
    lifecycle: Mapped[str | None] = mapped_column(String(16))
    # The code the member hands to friends (``domain.REFERRAL_ALPHABET``); unique, drawn at enrolment.
    referral_code: Mapped[str] = mapped_column(String(32))

    # The operator's search (service/search.py): prefixes of the id and of the name through btree indexes
    # that LIKE 'abc%' can use on PostgreSQL whatever the collation; the filters with the keyset after them.
    __table_args__ = (
        Index("ix_member_member_id_prefix", func.lower(text("member_id")).label("member_id_lower"),
              postgresql_ops={"member_id_lower": "text_pattern_ops"}),
        Index("ix_member_name_prefix", func.lower(text("name")).label("name_lower"),
              postgresql_ops={"name_lower": "text_pattern_ops"}),
        Index("ix_member_tier_member", "tier_id", "member_id"),
        Index("ix_member_value_class_member", "value_class", "member_id"),
        Index("ix_member_lifecycle_member", "lifecycle", "member_id"),
        Index("ix_member_referral_code", "referral_code", unique=True),
    )


class EarningRule(Base):
    """A promotion (multiplier) or a bonus. Deleting one only stamps ``deleted_at``: points already earned
    keep pointing at it."""

    __tablename__ = "earning_rule"
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Purchase(Base):
    __tablename__ = "purchase"
    purchase_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("member.member_id"), index=True)
    store_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column(Money)
    refunded_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    points_earned: Mapped[int] = mapped_column(BigInteger)
    bonus_points: Mapped[int] = mapped_column(BigInteger, default=0)
    points_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    lot_id: Mapped[int | None] = mapped_column(BigInteger)
    lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Paid partly with points: the captured hold, its points and their value, and the points refunds gave back.
    hold_id: Mapped[str | None] = mapped_column(String(64))
    points_paid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    points_paid_value: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    points_returned: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # What its rules with limits gave: [[rule_id, points, period, points given back by refunds since]].
    limited: Mapped[list[list[Any]] | None] = mapped_column(JSON)

    # Goals, holdout reports and simulations read the purchases of a period.
    __table_args__ = (Index("ix_purchase_occurred_at", "occurred_at"),)


class RuleBudget(Base):
    """Points a rule with a budget has given, net of refunds; its row is locked by each purchase that takes
    from it, so concurrent purchases never give more than the budget."""

    __tablename__ = "rule_budget"
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)


class RuleMemberUsage(Base):
    """Points a rule with a per-member limit has given one member in one period (``domain.period_key``)."""

    __tablename__ = "rule_member_usage"
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)


class RuleExposure(Base):
    """A member a rule with a holdout group took in (its window and audience admitted one of their purchases),
    given the rule or held out: the members its report compares."""

    __tablename__ = "rule_exposure"
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GoalSettlement(Base):
    """One member's reached goal in one period (``2027-Q1``, or ``rolling-3`` for the third card filled),
    settled once: its primary key is what makes a second settlement of the same period impossible."""

    __tablename__ = "goal_settlement"
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(32), primary_key=True)
    goal_id: Mapped[str] = mapped_column(String(64), unique=True)
    progress: Mapped[Decimal] = mapped_column(Money)
    points: Mapped[int] = mapped_column(BigInteger)
    reward_id: Mapped[str | None] = mapped_column(String(64))
    entry_id: Mapped[int | None] = mapped_column(BigInteger)
    settled_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GoalPeriod(Base):
    """A calendar period of a goal whose every member has been settled (the job skips it from then on); for a
    rolling goal one row, period ``rolling``, whose ``settled_at`` is how far its purchases were scanned."""

    __tablename__ = "goal_period"
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(32), primary_key=True)
    settled_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Referral(Base):
    """A referee's referral to the program's ``referral`` setting, settled by its first purchase of at least
    ``min_spend``: ``rewarded`` (both bonuses credited), ``capped`` (the referrer had the year's most, nothing
    paid) or, after a full refund of that purchase, ``reversed``. One row per referee (its key), so a
    referral is settled once; the referrer's rewarded rows of a year are what its cap counts."""

    __tablename__ = "referral"
    referee_id: Mapped[str] = mapped_column(ForeignKey("member.member_id"), primary_key=True)
    referrer_id: Mapped[str] = mapped_column(String(64))
    purchase_id: Mapped[str] = mapped_column(String(64))
    year: Mapped[int] = mapped_column(Integer)  # the purchase's calendar year in the program's time zone
    status: Mapped[str] = mapped_column(String(16))  # rewarded | capped | reversed
    referrer_points: Mapped[int] = mapped_column(BigInteger)
    referee_points: Mapped[int] = mapped_column(BigInteger)
    referee_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    referrer_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    settled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refund_id: Mapped[str | None] = mapped_column(String(64))  # the refund that reversed it

    __table_args__ = (Index("ix_referral_referrer_year", "referrer_id", "year"),)


class Refund(Base):
    __tablename__ = "refund"
    refund_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    purchase_id: Mapped[str] = mapped_column(ForeignKey("purchase.purchase_id"), index=True)
    member_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Money)
    points_reversed: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LedgerEntry(Base):
    """The audit trail: every change of a balance, with the balance after it."""

    __tablename__ = "ledger_entry"
    entry_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("member.member_id"))
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    purchase_id: Mapped[str | None] = mapped_column(String(64))
    refund_id: Mapped[str | None] = mapped_column(String(64))
    redemption_id: Mapped[str | None] = mapped_column(String(64))
    adjustment_id: Mapped[str | None] = mapped_column(String(64))
    transfer_id: Mapped[str | None] = mapped_column(String(64))
    hold_id: Mapped[str | None] = mapped_column(String(64))
    rule_ids: Mapped[list[str] | None] = mapped_column(JSON)
    actor: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_ledger_entry_member_entry", "member_id", "entry_id"),)


class Lot(Base):
    """Points credited together that expire together; spends take the soonest-expiring lots first.

    A lot is ``pending`` until ``available_at`` (the return window), then its remainder counts as available.
    """

    __tablename__ = "lot"
    lot_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("member.member_id"))
    entry_id: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    earned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime)
    pending: Mapped[bool] = mapped_column(default=False)
    # When ``points.expiring`` was sent about the lot (null: not yet); see ``service.reminders``.
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_lot_member_expires", "member_id", "expires_at"),
        Index("ix_lot_due_expiry", "expires_at", postgresql_where=text("remaining > 0"),
              sqlite_where=text("remaining > 0")),
        Index("ix_lot_due_release", "available_at", postgresql_where=text("pending"), sqlite_where=text("pending")),
        Index("ix_lot_due_reminder", "expires_at", postgresql_where=text(REMINDER_DUE),
              sqlite_where=text(REMINDER_DUE)),
    )


class RedemptionDebit(Base):
    """points' answer to each redemption it was asked to pay, so a repeated request gets the same answer."""

    __tablename__ = "redemption_debit"
    redemption_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), index=True)
    points: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    refunded: Mapped[bool] = mapped_column(default=False)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MemberIdentifier(Base):
    """A handle a member is found by at a till or in a shop: a card, a phone, an e-mail, an external id. The
    key is the normalised value (``domain.normalize_identifier``), so two members can never hold one handle.
    The member's own e-mail and phone are mirrored here (``from_profile``) so lookups find them too."""

    __tablename__ = "member_identifier"
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    normalized: Mapped[str] = mapped_column(String(254), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("member.member_id"), index=True)
    value: Mapped[str] = mapped_column(String(254))
    from_profile: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        # q's prefix over every kind, case-insensitively (cards and external ids are stored as given).
        Index("ix_member_identifier_prefix", func.lower(text("normalized")).label("normalized_lower"),
              postgresql_ops={"normalized_lower": "text_pattern_ops"}),
    )


class Hold(Base):
    """Points set aside at a checkout until the payment completes (captured), is called off (voided) or the
    hold runs out (expired). ``lots`` says which lots gave the points, soonest-expiring first, so a capture
    spends them in that order and a release puts each part back in its own lot, with its own date."""

    __tablename__ = "hold"
    hold_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("member.member_id"), index=True)
    store_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # held | captured | voided | expired
    points: Mapped[int] = mapped_column(BigInteger)  # held
    value: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    order_total: Mapped[Decimal | None] = mapped_column(Money)
    captured_points: Mapped[int] = mapped_column(BigInteger, default=0)
    captured_value: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    lots: Mapped[list[list[int]]] = mapped_column(JSON)  # [[lot_id, points], ...]
    purchase_id: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The answer of the capture or void that settled it, replayed as it was to a retry.
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_hold_due", "expires_at", postgresql_where=text("status = 'held'"),
              sqlite_where=text("status = 'held'")),
    )
