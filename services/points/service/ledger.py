"""How a member's balance moves: ledger entries, lots, pending release, expiry.

The stored figures obey, after every function here:

- ``pending`` is the sum of the remainders of the member's pending lots;
- ``max(available, 0)`` is the sum of the remainders of the other lots, and a negative ``available`` is a
  debt (a refund took back points already spent) that the next credits repay first;
- ``held`` is the sum of the points of the member's holds still ``held`` (taken out of their lots, written in
  no ledger entry until a capture spends them);
- the sum of the ledger's points is ``available + pending + held``, which each entry records as
  ``balance_after``.

A credit's figures are computed by ``domain.credit_figures`` and a debt is repaid by ``domain.lot_remaining``,
here and on the purchase's fast path (``purchases``, which writes its rows in one statement), so there is one
arithmetic for them. The caller holds the member row locked (``with_for_update``) and owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain
from services.points.models import LedgerEntry, Lot, Member
from shared.clock import utcnow
from shared.messaging import events


def snapshot(member: Member) -> events.BalanceSnapshot:
    """The member's balance as the events that move it carry it."""
    return events.BalanceSnapshot(available=member.available, pending=member.pending, held=member.held)


async def append_entry(session: AsyncSession, member: Member, kind: str, points: int, **refs: Any) -> LedgerEntry:
    entry = LedgerEntry(
        member_id=member.member_id, kind=kind, points=points,
        balance_after=member.available + member.pending + member.held,
        occurred_at=utcnow(), **refs,
    )
    session.add(entry)
    await session.flush()
    return entry


async def credit(
    session: AsyncSession, member: Member, kind: str, points: int, *, expires_at: datetime,
    available_at: datetime | None = None, **refs: Any,
) -> tuple[LedgerEntry, Lot | None]:
    """Credit ``points`` as a new lot; pending until ``available_at`` when that is still ahead."""
    now = utcnow()
    figures = domain.credit_figures(kind, points, available=member.available, pending=member.pending,
                                    lifetime_earned=member.lifetime_earned, now=now, available_at=available_at,
                                    held=member.held)
    member.available, member.pending = figures.available, figures.pending
    member.lifetime_earned = figures.lifetime_earned
    entry = await append_entry(session, member, kind, points, **refs)
    lot = None
    if points > 0:
        lot = Lot(
            member_id=member.member_id, entry_id=entry.entry_id, points=points, remaining=figures.remaining,
            earned_at=now, expires_at=expires_at, available_at=figures.available_at, pending=figures.lot_pending,
        )
        session.add(lot)
        await session.flush()
    return entry, lot


@dataclass(frozen=True)
class Taken:
    points: int
    expires_at: datetime


async def take(session: AsyncSession, member: Member, points: int, *, first: Lot | None = None) -> list[Taken]:
    """Take ``points`` from the member's lots: ``first`` (a purchase's own pending lot, for a refund inside
    the return window), then available lots soonest-expiring first. Moves the stored figures; whatever the
    lots cannot cover leaves ``available`` below zero, so callers that must not do that check first."""
    taken: list[Taken] = []
    left = points
    if first is not None and first.pending and first.remaining > 0:
        part = min(first.remaining, left)
        first.remaining -= part
        member.pending -= part
        left -= part
        taken.append(Taken(part, first.expires_at))
    if left <= 0:
        return taken
    lots = (await session.execute(
        select(Lot).where(Lot.member_id == member.member_id, Lot.remaining > 0, Lot.pending.is_(False))
        .order_by(Lot.expires_at, Lot.lot_id).with_for_update()
    )).scalars().all()
    by_id = {lot.lot_id: lot for lot in lots}
    states = [domain.LotState(lot.lot_id, lot.remaining, lot.expires_at) for lot in lots]
    for lot_id, part in domain.take_from_lots(states, left):
        by_id[lot_id].remaining -= part
        taken.append(Taken(part, by_id[lot_id].expires_at))
    member.available -= left
    return taken


async def debit(
    session: AsyncSession, member: Member, kind: str, points: int, *, first: Lot | None = None, **refs: Any
) -> tuple[LedgerEntry, list[Taken]]:
    taken = await take(session, member, points, first=first)
    if kind == "spend":
        member.lifetime_spent += points
    return await append_entry(session, member, kind, -points, **refs), taken


async def receive(session: AsyncSession, member: Member, kind: str, parts: list[Taken], **refs: Any) -> LedgerEntry:
    """Credit points taken from another member, one lot per part, each keeping its expiry date."""
    now = utcnow()
    remainders = []
    for part in parts:
        remainders.append(domain.lot_remaining(part.points, member.available))
        member.available += part.points
    entry = await append_entry(session, member, kind, sum(p.points for p in parts), **refs)
    for part, remaining in zip(parts, remainders, strict=True):
        session.add(Lot(member_id=member.member_id, entry_id=entry.entry_id, points=part.points,
                        remaining=remaining, earned_at=now, expires_at=part.expires_at, available_at=now,
                        pending=False))
    await session.flush()
    return entry


async def release(session: AsyncSession, member: Member, parts: list[list[int]]) -> int:
    """Put held parts back in their own lots, with their own dates (a lot past its date then expires at the
    next settle); a debt is repaid first, as any points that become available. Returns the points."""
    lots = {lot.lot_id: lot for lot in (await session.execute(
        select(Lot).where(Lot.lot_id.in_([lot_id for lot_id, _ in parts])).with_for_update())).scalars()}
    released = 0
    for lot_id, part in parts:
        lots[lot_id].remaining += domain.lot_remaining(part, member.available)
        member.available += part
        member.held -= part
        released += part
    return released


async def spend_held(session: AsyncSession, member: Member, points: int, **refs: Any) -> LedgerEntry:
    """A capture: ``points`` of the held ones leave the balance as a ``spend`` (they already left their lots
    when they were held)."""
    member.held -= points
    member.lifetime_spent += points
    return await append_entry(session, member, "spend", -points, **refs)


def due_lots_clause(now: datetime | ColumnElement[datetime]) -> Any:
    """Lots with something to do at ``now``: pending ones whose window closed, others past their expiry."""
    return or_(
        and_(Lot.pending.is_(True), Lot.available_at <= now),
        and_(Lot.pending.is_(False), Lot.remaining > 0, Lot.expires_at <= now),
    )


def is_due(lot: Any, now: datetime) -> bool:
    """``due_lots_clause`` for a lot already read (any object with the lot's columns)."""
    if lot.pending:
        return lot.available_at is not None and lot.available_at <= now
    return lot.remaining > 0 and lot.expires_at is not None and lot.expires_at <= now


async def settle(session: AsyncSession, member: Member) -> int:
    """Release matured pending lots, then expire what is past its date; returns the points expired.

    Running it again at the same moment finds nothing to do, so expiry never happens twice.
    """
    now = utcnow()
    lots = (await session.execute(
        select(Lot).where(Lot.member_id == member.member_id, due_lots_clause(now))
        .order_by(Lot.available_at, Lot.lot_id).with_for_update()
    )).scalars().all()
    for lot in (lot for lot in lots if lot.pending):
        released = lot.remaining
        member.pending -= released
        lot.remaining = domain.lot_remaining(released, member.available)
        member.available += released
        lot.pending = False
    expired = 0
    for lot in lots:
        if not lot.pending and lot.remaining > 0 and lot.expires_at <= now:
            expired += lot.remaining
            member.available -= lot.remaining
            lot.remaining = 0
    if expired:
        await append_entry(session, member, "expire", -expired)
    return expired
