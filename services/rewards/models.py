"""Tables of the rewards service: the catalog, redemptions and vouchers, plus what rewards knows of members
and tiers from the other services' events (it never reads their tables).

A reward's ``stock_left`` is changed under the reward's row lock in the transaction that reserves, releases or
returns units, so it is always ``stock`` minus the units held by pending and confirmed redemptions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.audit import audit_table
from shared.db.types import UTCDateTime, new_metadata
from shared.http.idempotency import idempotency_table
from shared.messaging.consumer import inbox_table
from shared.messaging.outbox import outbox_table


class Base(DeclarativeBase):
    metadata = new_metadata()


outbox = outbox_table(Base.metadata)
inbox = inbox_table(Base.metadata)
idempotency = idempotency_table(Base.metadata)
audit = audit_table(Base.metadata)


class Reward(Base):
    """A catalog entry. ``stock`` null means unlimited (and ``stock_left`` is null too)."""

    __tablename__ = "reward"
    reward_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    points_cost: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int | None] = mapped_column(Integer)
    stock_left: Mapped[int | None] = mapped_column(Integer)
    per_member_limit: Mapped[int | None] = mapped_column(Integer)
    min_tier: Mapped[str | None] = mapped_column(String(64))
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("stock_left >= 0 AND stock_left <= stock", name="stock_left_in_range"),
    )


class Redemption(Base):
    """One request to spend points on a reward: pending until points answers, then confirmed or rejected;
    a confirmed one may be cancelled while its voucher is unused. ``asks`` counts the ``redemption.requested``
    events written for it (the first and every re-ask of jobs.reask_stale), the last at ``last_requested_at``.
    ``source`` ``goal``: a goal's free reward (``service.goals``), confirmed or rejected at once, never asked."""

    __tablename__ = "redemption"
    redemption_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64))
    reward_id: Mapped[str] = mapped_column(ForeignKey("reward.reward_id"))
    quantity: Mapped[int] = mapped_column(Integer)
    points_cost: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    voucher_code: Mapped[str | None] = mapped_column(String(17))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    asks: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(String(64))  # the name of the API key that asked for it
    source: Mapped[str] = mapped_column(String(16), default="member", server_default="member")

    __table_args__ = (
        Index("ix_redemption_member_created", "member_id", "created_at", "redemption_id"),
        Index("ix_redemption_reward_member", "reward_id", "member_id"),
        Index("ix_redemption_pending_asked", "last_requested_at",
              postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'")),
    )


class Voucher(Base):
    """What a till checks and marks used: one per confirmed redemption."""

    __tablename__ = "voucher"
    code: Mapped[str] = mapped_column(String(17), primary_key=True)
    redemption_id: Mapped[str] = mapped_column(ForeignKey("redemption.redemption_id"), unique=True)
    reward_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    store_id: Mapped[str | None] = mapped_column(String(64))


class Member(Base):
    """What rewards knows of a member from events: status (member.*), tier (tier.changed) and available
    points (the balance every points.* event carries). No row yet means nothing heard: no tier, 0 points."""

    __tablename__ = "member"
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str | None] = mapped_column(String(16))
    tier_id: Mapped[str | None] = mapped_column(String(64))
    tier_rank: Mapped[int] = mapped_column(Integer, default=0)
    available: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Tier(Base):
    """The tier ladder as the latest tier.changed told it: tier id and rank (0 = lowest)."""

    __tablename__ = "tier"
    tier_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
