"""Purchase and refund facts, as points tells them: stored once per purchase (or refund) however often they
are told, and each member evaluated after each of their purchases.

A consumer catching up on a backlog hands ``record_purchases`` thousands of purchases at once. They are
replayed in memory in their order with the rules ``evaluation.settle`` and
``segmentation.refresh_lifecycles`` apply to one purchase, on what a dozen statements read, and the outcome
is written back in bulk (``shared.db.bulk``); one purchase is a batch of one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import ColumnElement, Table, case, func, literal_column, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers.domain import segments, tiers
from services.tiers.models import Base, Member, Purchase, Refund, Segment
from services.tiers.service import OUTBOX
from services.tiers.service.evaluation import known_member, settle, tier_changed
from services.tiers.service.program import program_for_evaluation
from services.tiers.service.segmentation import last_run, refresh_lifecycles, run_params, segment_changed
from shared.clock import utcnow
from shared.db.bulk import among, expire_objects, force_custom_plans, insert_rows, is_postgres, update_rows
from shared.db.types import MONEY_SCALE, Money
from shared.messaging import events

log = logging.getLogger(__name__)

MEMBER_TABLE: Table = Base.metadata.tables["member"]
PURCHASE_TABLE: Table = Base.metadata.tables["purchase"]
SEGMENT_TABLE: Table = Base.metadata.tables["segment"]
HISTORY_TABLE: Table = Base.metadata.tables["tier_history"]


async def record_purchase(
    session: AsyncSession, data: events.PurchaseRecorded, *, now: datetime | None = None
) -> None:
    """Store the purchase's facts (once per purchase_id, however often it is told) and evaluate."""
    await record_purchases(session, [data], now=now)


async def record_purchases(
    session: AsyncSession, batch: Sequence[events.PurchaseRecorded], *, now: datetime | None = None
) -> None:
    """Purchases in the order they were told, in one go: a consumer catching up on a backlog needs the same
    dozen statements for thousands of events as for one. What the evaluations need is read once (members
    locked, the purchases as stored, their refunds, each member's qualifying value summed by the database);
    the events are then replayed in memory in their order, each member evaluated after each of their
    purchases as when the events come one at a time (two purchases that each cross a threshold make two
    changes of tier, in the history too), and the outcome is written back in bulk."""
    now = now or utcnow()
    await session.flush()  # what earlier events of the transaction staged is in the rows read below
    await force_custom_plans(session)
    program = await program_for_evaluation(session)
    replay = _Replay(program, now, ROUND_HALF_UP if is_postgres(session) else ROUND_HALF_EVEN)
    replay.members = await _locked_standings(session, sorted({d.member_id for d in batch}), now)
    purchase_ids = list(dict.fromkeys(d.purchase_id for d in batch))
    replay.purchases = await _stored_purchases(session, purchase_ids)
    replay.refunds = await _refund_sums(session, purchase_ids)
    values = await _window_values(session, list(replay.members), program.basis, program.window_start(now))
    for member in replay.members.values():
        member.value = values.get(member.member_id, Decimal(0))
    replay.lifecycles = await _Lifecycles.load(session, [m for m in replay.members.values() if not m.new], now)
    replay.enrol_new_members()
    for data in batch:
        replay.apply(data)
    await replay.write(session)


@dataclass
class _Standing:
    """A locked member row as the batch's purchases move it; ``value`` is the qualifying value so far."""

    member_id: str
    tier_id: str
    since: datetime
    retained_until: datetime
    enrolled_at: datetime  # the enrolment, or when tiers first saw the member
    new: bool = False
    moved: bool = False
    value: Decimal = Decimal(0)


@dataclass(frozen=True)
class _Told:
    """A purchase as stored, or as last told in the batch."""

    member_id: str
    currency: str
    facts: tiers.PurchaseFacts


class _Replay:
    """The batch's purchases applied in memory, one at a time, with the rules ``settle`` and
    ``segmentation.refresh_lifecycles`` apply to one purchase; ``write`` stores the outcome."""

    def __init__(self, program: tiers.Program, now: datetime, rounding: str) -> None:
        self.program = program
        self.rounding = rounding  # how the database rounds money to four decimals
        self.policy = program.policy
        self.now = now
        self.window_start = program.window_start(now)
        self.members: dict[str, _Standing] = {}
        self.purchases: dict[str, _Told] = {}
        self.refunds: dict[str, tuple[Decimal, int]] = {}
        self.lifecycles = _Lifecycles.none(now)
        self.written: dict[str, _Told] = {}
        self.history: list[dict[str, Any]] = []
        self.announcements: list[events.EventData] = []

    def enrol_new_members(self) -> None:
        """A member seen for the first time starts at the lowest tier (no facts of theirs can exist yet)."""
        decision = tiers.evaluate(None, Decimal(0), self.program.tiers, self.policy, self.now)
        for member in self.members.values():
            if member.new:
                self._change(member.member_id, None, decision)
                member.tier_id, member.since, member.retained_until = (decision.tier_id, decision.since,
                                                                       decision.retained_until)

    def apply(self, data: events.PurchaseRecorded) -> None:
        """Store the purchase's facts (set, not added: a purchase told twice counts once) and evaluate."""
        known = self.purchases.get(data.purchase_id)
        if known is not None and known.member_id != data.member_id:
            log.warning("purchase %s is already %s's; ignored for %s", data.purchase_id, known.member_id,
                        data.member_id)
            return
        refunded, reversed_ = self.refunds.get(data.purchase_id, (Decimal(0), 0))
        told = _Told(data.member_id, data.currency, tiers.PurchaseFacts(
            occurred_at=data.occurred_at, total=_as_stored(data.total, self.rounding), refunded=refunded,
            points=data.points_earned, points_reversed=reversed_))
        member = self.members[data.member_id]
        member.value += self._counted(told) - (self._counted(known) if known is not None else 0)
        self.purchases[data.purchase_id] = self.written[data.purchase_id] = told
        self._evaluate(member)
        changed = self.lifecycles.refresh(member, data.purchase_id, told)
        if changed is not None:
            self.announcements.append(changed)

    def _counted(self, told: _Told) -> Decimal:
        """What the purchase adds to its member's qualifying value (``tiers.qualifying_value``)."""
        if told.facts.occurred_at < self.window_start:
            return Decimal(0)
        return told.facts.value(self.program.basis)

    def _evaluate(self, member: _Standing) -> None:
        standing = tiers.Standing(member.tier_id, member.since, member.retained_until)
        decision = tiers.evaluate(standing, member.value, self.program.tiers, self.policy, self.now)
        if decision.reason is not None:
            self._change(member.member_id, member.tier_id, decision)
        if decision.standing != standing:
            member.tier_id, member.since, member.retained_until = (decision.tier_id, decision.since,
                                                                   decision.retained_until)
            member.moved = True

    def _change(self, member_id: str, from_tier: str | None, decision: tiers.Decision) -> None:
        """A change of tier: its history row and its announcement, in the order they happen."""
        assert decision.reason is not None
        self.history.append({"member_id": member_id, "from_tier": from_tier, "to_tier": decision.tier_id,
                             "reason": decision.reason, "at": self.now})
        self.announcements.append(tier_changed(member_id, from_tier, decision, self.program, decision.reason,
                                               self.now))

    async def write(self, session: AsyncSession) -> None:
        """The outcome in a handful of bulk statements (members first: the other rows refer to them)."""
        await _insert_members(session, [m for m in self.members.values() if m.new], self.now)
        await _update_members(session, [m for m in self.members.values() if m.moved and not m.new], self.now)
        await _upsert_purchases(session, self.written)
        await insert_rows(session, HISTORY_TABLE, self.history)
        await OUTBOX.add(session, *self.announcements)
        await self.lifecycles.write(session)
        expire_objects(session, Member, Purchase, Segment)


def _as_stored(amount: Decimal, rounding: str) -> Decimal:
    """The amount as the money column keeps it (four decimals: PostgreSQL's NUMERIC rounds half away from
    zero, ``Money`` on SQLite half to even), so the replay counts what a later read would."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -MONEY_SCALE:
        return amount
    return amount.quantize(Decimal(1).scaleb(-MONEY_SCALE), rounding=rounding)


async def _locked_standings(session: AsyncSession, member_ids: list[str], now: datetime) -> dict[str, _Standing]:
    """The members' rows, locked in id order (see ``evaluation.known_members``); a member not known yet is marked new
    (``_Replay.enrol_new_members`` places them, ``_insert_members`` stores them)."""
    table = MEMBER_TABLE
    rows = (await session.execute(
        select(table.c.member_id, table.c.tier_id, table.c.tier_since, table.c.retained_until, table.c.enrolled_at,
               table.c.first_seen_at)
        .where(among(session, table.c.member_id, member_ids)).order_by(table.c.member_id).with_for_update()
    )).all()
    members = {row.member_id: _Standing(row.member_id, row.tier_id, row.tier_since, row.retained_until,
                                        row.enrolled_at or row.first_seen_at) for row in rows}
    for member_id in member_ids:
        if member_id not in members:
            members[member_id] = _Standing(member_id, "", now, now, now, new=True)
    return members


async def _stored_purchases(session: AsyncSession, purchase_ids: list[str]) -> dict[str, _Told]:
    table = PURCHASE_TABLE
    rows = (await session.execute(
        select(table.c.purchase_id, table.c.member_id, table.c.currency, table.c.occurred_at, table.c.total,
               table.c.refunded, table.c.points_earned, table.c.points_reversed)
        .where(among(session, table.c.purchase_id, purchase_ids))
    )).all()
    return {row.purchase_id: _Told(row.member_id, row.currency, tiers.PurchaseFacts(
        occurred_at=row.occurred_at, total=row.total, refunded=row.refunded, points=row.points_earned,
        points_reversed=row.points_reversed)) for row in rows}


async def _refund_sums(session: AsyncSession, purchase_ids: list[str]) -> dict[str, tuple[Decimal, int]]:
    """Each purchase's refunded amount and reversed points: the sums of its refunds' facts (``sync_refunds``)."""
    rows = (await session.execute(
        select(Refund.purchase_id, func.sum(Refund.amount).label("amount"),
               func.sum(Refund.points_reversed).label("points"))
        .where(among(session, Refund.purchase_id, purchase_ids)).group_by(Refund.purchase_id)
    )).all()
    return {row.purchase_id: (row.amount, int(row.points)) for row in rows}


async def _window_values(
    session: AsyncSession, member_ids: list[str], basis: tiers.Basis, window_start: datetime
) -> dict[str, Decimal]:
    """Each member's qualifying value as stored, summed by the database: ``tiers.qualifying_value`` over
    their purchases, without carrying every purchase of the window over the wire."""
    table = PURCHASE_TABLE
    total: ColumnElement[Any]
    if basis == "points":
        net = table.c.points_earned - table.c.points_reversed
        total = func.sum(case((net > 0, net), else_=literal_column("0")))
    else:
        net = table.c.total - table.c.refunded
        total = type_coerce(func.sum(case((net > 0, net), else_=literal_column("0"))), Money)
    rows = (await session.execute(
        select(table.c.member_id, total.label("value"))
        .where(among(session, table.c.member_id, member_ids), table.c.occurred_at >= window_start)
        .group_by(table.c.member_id)
    )).all()
    return {row.member_id: Decimal(row.value or 0) for row in rows}


async def _insert_members(session: AsyncSession, members: list[_Standing], now: datetime) -> None:
    await insert_rows(session, MEMBER_TABLE, [
        {"member_id": m.member_id, "status": None, "enrolled_at": None, "first_seen_at": now, "tier_id": m.tier_id,
         "tier_since": m.since, "retained_until": m.retained_until, "updated_at": now}
        for m in members])


async def _update_members(session: AsyncSession, members: list[_Standing], now: datetime) -> None:
    await update_rows(session, MEMBER_TABLE, "member_id", [
        {"member_id": m.member_id, "tier_id": m.tier_id, "tier_since": m.since, "retained_until": m.retained_until,
         "updated_at": now}
        for m in members])


async def _upsert_purchases(session: AsyncSession, purchases: dict[str, _Told]) -> None:
    """Each purchase's facts as last told: inserted, or set over what was stored (never added to)."""
    await insert_rows(session, PURCHASE_TABLE, [
        {"purchase_id": purchase_id, "member_id": told.member_id, "occurred_at": told.facts.occurred_at,
         "currency": told.currency, "total": told.facts.total, "refunded": told.facts.refunded,
         "points_earned": told.facts.points, "points_reversed": told.facts.points_reversed}
        for purchase_id, told in purchases.items()
    ], on_conflict="purchase_id", keep=("member_id",))


class _Lifecycles:
    """Segmented members' lifecycles as the batch's purchases move them: what
    ``segmentation.refresh_lifecycles`` does after each purchase, on the rows and purchases read once."""

    def __init__(self, now: datetime, params: segments.Params | None = None,
                 rows: dict[str, dict[str, Any]] | None = None,
                 bought: dict[str, dict[str, segments.Purchase]] | None = None) -> None:
        self.now = now
        self.params = params
        self.rows = rows or {}
        self.bought = bought or {}
        self.changed: dict[str, dict[str, Any]] = {}

    @classmethod
    def none(cls, now: datetime) -> _Lifecycles:
        return cls(now)

    @classmethod
    async def load(cls, session: AsyncSession, members: list[_Standing], now: datetime) -> _Lifecycles:
        """The members' segment rows, locked (after the member rows, as everywhere), with their purchases;
        nothing before the first segmentation run (the lifecycle then waits for it)."""
        run = await last_run(session)
        if run is None or not members:
            return cls.none(now)
        table = SEGMENT_TABLE
        rows = {row.member_id: dict(row._mapping) for row in (await session.execute(
            select(table.c.member_id, table.c.value_class, table.c.lifecycle, table.c.recency, table.c.frequency,
                   table.c.monetary)
            .where(among(session, table.c.member_id, [m.member_id for m in members])).order_by(table.c.member_id)
            .with_for_update()
        )).all()}
        if not rows:
            return cls.none(now)
        purchases = PURCHASE_TABLE
        bought: dict[str, dict[str, segments.Purchase]] = {}
        for row in (await session.execute(
            select(purchases.c.member_id, purchases.c.purchase_id, purchases.c.occurred_at, purchases.c.total,
                   purchases.c.refunded).where(among(session, purchases.c.member_id, list(rows)))
        )).all():
            bought.setdefault(row.member_id, {})[row.purchase_id] = segments.Purchase(row.occurred_at,
                                                                                     row.total - row.refunded)
        return cls(now, run_params(run), rows, bought)

    def refresh(self, member: _Standing, purchase_id: str, told: _Told) -> events.MemberSegmentChanged | None:
        """The member's lifecycle after this purchase; its announcement when it moved."""
        row = self.rows.get(member.member_id)
        if row is None or self.params is None:
            return None
        bought = self.bought.setdefault(member.member_id, {})
        bought[purchase_id] = segments.Purchase(told.facts.occurred_at, told.facts.total - told.facts.refunded)
        history = segments.summarize(bought.values(), self.now, self.params)
        lifecycle = segments.lifecycle(member.enrolled_at, history, self.now, self.params)
        if lifecycle == row["lifecycle"]:
            return None
        rfm = events.RfmScores(recency=row["recency"], frequency=row["frequency"], monetary=row["monetary"])
        announcement = segment_changed(member.member_id, row["value_class"], row["lifecycle"], row["value_class"],
                                       lifecycle, rfm, self.now)
        row["lifecycle"] = lifecycle
        self.changed[member.member_id] = row
        return announcement

    async def write(self, session: AsyncSession) -> None:
        await update_rows(session, SEGMENT_TABLE, "member_id", [
            {"member_id": member_id, "lifecycle": row["lifecycle"], "changed_at": self.now}
            for member_id, row in self.changed.items()])


async def record_refund(session: AsyncSession, data: events.PurchaseRefunded, *, now: datetime | None = None) -> None:
    """Store the refund's facts (once per refund_id) and lower its purchase's value."""
    now = now or utcnow()
    program = await program_for_evaluation(session)
    member = await known_member(session, data.member_id, program, now)
    refund = await refund_row(session, data.refund_id, data.purchase_id, data.member_id)
    refund.amount = data.amount
    refund.points_reversed = data.points_reversed
    refund.occurred_at = data.occurred_at
    purchase = await session.get(Purchase, data.purchase_id)
    if purchase is not None and purchase.member_id == data.member_id:
        await sync_refunds(session, [purchase])
    await settle(session, [member], program, now)
    await refresh_lifecycles(session, [member], now)


async def refund_row(session: AsyncSession, refund_id: str, purchase_id: str, member_id: str) -> Refund:
    """The refund's row, staged empty when it is not known yet: its refund and its ``points.reversed`` each
    bring some of its facts, in either order."""
    refund = await session.get(Refund, refund_id)
    if refund is None:
        refund = Refund(refund_id=refund_id, purchase_id=purchase_id, member_id=member_id, amount=Decimal(0),
                        points_reversed=0)
        session.add(refund)
    return refund


async def sync_refunds(session: AsyncSession, purchases: Sequence[Purchase]) -> None:
    """A purchase's refunded amount and reversed points are the sums of its refunds' facts."""
    if not purchases:
        return
    sums = await _refund_sums(session, list(dict.fromkeys(p.purchase_id for p in purchases)))
    for purchase in purchases:
        purchase.refunded, purchase.points_reversed = sums.get(purchase.purchase_id, (Decimal(0), 0))
