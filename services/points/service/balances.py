"""Reads of a member's balance and ledger: each one statement run on the driver (``DriverStatement``) outside
any transaction, since they are the most frequent requests; a balance with a lot due is settled first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import schemas
from services.points.errors import MemberNotFound
from services.points.models import Hold, LedgerEntry, Lot, Member, table_of
from services.points.service import holds, ledger
from services.points.service.members import get_member, locked_member
from shared.clock import utcnow
from shared.db.database import Database
from shared.db.driver import DriverStatement
from shared.db.types import UTCDateTime
from shared.http.pagination import decode_cursor, encode_cursor

EXPIRING_WINDOW = timedelta(days=30)


def _lots_to_show_clause(now: Any, window_end: Any) -> Any:
    """The member's lots a balance shows (expiring by ``window_end``) or must settle first (due at ``now``)."""
    return or_(and_(Lot.remaining > 0, Lot.expires_at <= window_end), ledger.due_lots_clause(now))


def _balance_query() -> Select[Any]:
    """Built once, with bind parameters: building the expression costs more than running it."""
    member, lot = Member.__table__, Lot.__table__
    shown = and_(lot.c.member_id == member.c.member_id,
                 _lots_to_show_clause(bindparam("now", type_=UTCDateTime), bindparam("window_end", type_=UTCDateTime)))
    # A hold past its time (only a member holding points has one to look for) is settled first too.
    hold_due = and_(member.c.held > 0, select(Hold.hold_id).where(
        Hold.member_id == member.c.member_id, holds.due_clause(bindparam("now", type_=UTCDateTime))).exists())
    return (
        select(member.c.available, member.c.pending.label("member_pending"), member.c.held,
               member.c.lifetime_earned, member.c.lifetime_spent, member.c.tier_id, hold_due.label("hold_due"),
               lot.c.expires_at, lot.c.remaining, lot.c.pending, lot.c.available_at)
        .select_from(member.outerjoin(lot, shown))
        .where(member.c.member_id == bindparam("member_id"))
    )


_BALANCE = DriverStatement(_balance_query())


async def balance(db: Database, member_id: str) -> schemas.Balance:
    """The member's figures and the lots a balance shows, read in one statement outside any transaction
    (it is its own snapshot). When a lot is due (matured or expired) the balance is read again in a
    transaction that settles it first, which only happens when such a lot exists."""
    now = utcnow()
    rows: Sequence[Any] = await _BALANCE.read(db.engine, {"member_id": member_id, "now": now,
                                                    "window_end": now + EXPIRING_WINDOW})
    if not rows:
        raise MemberNotFound(f"No member '{member_id}'; enroll it with PUT /v1/members/{member_id}.")
    lots = [row for row in rows if row.expires_at is not None]
    first = rows[0]
    if first.hold_due or any(ledger.is_due(lot, now) for lot in lots):
        async with db.transaction() as session:
            return await _settled_balance(session, member_id)
    return _balance_out(member_id, first.available, first.member_pending, first.held, first.lifetime_earned,
                        first.lifetime_spent, first.tier_id, lots, now)


async def _settled_balance(session: AsyncSession, member_id: str) -> schemas.Balance:
    """``balance`` in the caller's transaction, the member's due lots settled first."""
    member = await locked_member(session, member_id)
    now = utcnow()
    lots = await _lots_to_show(session, member_id, now)
    return _balance_out(member_id, member.available, member.pending, member.held, member.lifetime_earned,
                        member.lifetime_spent, member.tier_id, lots, now)


def _balance_out(member_id: str, available: int, pending: int, held: int, lifetime_earned: int,
                 lifetime_spent: int, tier: str | None, lots: Sequence[Any], now: datetime) -> schemas.Balance:
    expiring: dict[datetime, int] = {}
    for lot in lots:
        if lot.remaining > 0 and lot.expires_at <= now + EXPIRING_WINDOW:
            expiring[lot.expires_at] = expiring.get(lot.expires_at, 0) + lot.remaining
    return schemas.Balance(
        member_id=member_id, available=available, pending=pending, held=held, lifetime_earned=lifetime_earned,
        lifetime_spent=lifetime_spent,
        expiring=[schemas.Expiring(points=p, expires_at=t) for t, p in sorted(expiring.items())],
        tier=tier, as_of=now,
    )


async def _lots_to_show(
    session: AsyncSession, member_id: str, now: datetime
) -> Sequence[Row[datetime, int, bool, datetime]]:
    return (await session.execute(
        select(Lot.expires_at, Lot.remaining, Lot.pending, Lot.available_at)
        .where(Lot.member_id == member_id, _lots_to_show_clause(now, now + EXPIRING_WINDOW))
    )).all()


def _ledger_page_query(after_cursor: bool) -> DriverStatement:
    entry = table_of(LedgerEntry)
    query = select(entry).where(entry.c.member_id == bindparam("member_id"))
    if after_cursor:
        query = query.where(entry.c.entry_id < bindparam("before"))
    return DriverStatement(query.order_by(entry.c.entry_id.desc()).limit(bindparam("limit")))


_LEDGER_PAGE = {False: _ledger_page_query(after_cursor=False), True: _ledger_page_query(after_cursor=True)}


async def ledger_page(db: Database, member_id: str, limit: int, cursor: str | None
                      ) -> tuple[list[schemas.LedgerEntry], str | None]:
    """Newest first, keyset on entry_id so a page costs the same however long the ledger is. A page is one
    statement (its own snapshot); only an empty page asks whether the member exists."""
    params: dict[str, Any] = {"member_id": member_id, "limit": limit + 1}
    if cursor:
        (params["before"],) = decode_cursor(cursor, (int,))
    rows = await _LEDGER_PAGE["before" in params].read(db.engine, params)
    if not rows:
        async with db.read() as session:
            await get_member(session, member_id)
    more = len(rows) > limit
    rows = rows[:limit]
    return [entry_out(e) for e in rows], encode_cursor([rows[-1].entry_id]) if more else None


def entry_out(entry: Any) -> schemas.LedgerEntry:
    """A ledger row (an entity or a row of its columns) as the API shows it."""
    return schemas.LedgerEntry(
        entry_id=entry.entry_id, kind=entry.kind, points=entry.points,
        balance_after=entry.balance_after, occurred_at=entry.occurred_at, purchase_id=entry.purchase_id,
        refund_id=entry.refund_id, redemption_id=entry.redemption_id, adjustment_id=entry.adjustment_id,
        transfer_id=entry.transfer_id, hold_id=entry.hold_id, rule_ids=entry.rule_ids, actor=entry.actor,
        reason=entry.note,
    )
