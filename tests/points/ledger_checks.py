"""The ledger invariant, checked after every scenario."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import func, select

from services.points.models import Hold, LedgerEntry, Lot, Member
from shared.runtime import Runtime


async def assert_balanced(app: FastAPI, member_id: str) -> None:
    """The stored balance (available + pending + held) equals the sum of the ledger, and each entry's
    ``balance_after`` the sum up to it in entry order; pending equals the pending lots; what is available
    equals the other lots, a negative balance (a debt from a refund) having no lots behind it; held equals
    the points of the member's holds still held, and their lot parts."""
    runtime: Runtime = app.state.runtime
    async with runtime.db.read() as session:
        member = await session.get(Member, member_id)
        assert member is not None
        ledger_sum = (await session.execute(
            select(func.coalesce(func.sum(LedgerEntry.points), 0)).where(LedgerEntry.member_id == member_id)
        )).scalar_one()
        entries = (await session.execute(
            select(LedgerEntry.points, LedgerEntry.balance_after).where(LedgerEntry.member_id == member_id)
            .order_by(LedgerEntry.entry_id)
        )).all()
        lots = dict((await session.execute(
            select(Lot.pending, func.coalesce(func.sum(Lot.remaining), 0)).where(Lot.member_id == member_id)
            .group_by(Lot.pending)
        )).all())
        negative_lots = (await session.execute(
            select(func.count()).where(Lot.member_id == member_id, Lot.remaining < 0))).scalar_one()
        open_holds = (await session.execute(
            select(Hold).where(Hold.member_id == member_id, Hold.status == "held"))).scalars().all()
    total = member.available + member.pending + member.held
    assert ledger_sum == total, (ledger_sum, member.available, member.pending, member.held)
    running = 0
    for points, balance_after in entries:  # each entry says the balance it left, in the order of the ledger
        running += points
        assert balance_after == running, (entries, member_id)
    assert member.held == sum(hold.points for hold in open_holds) >= 0
    assert all(sum(part for _, part in hold.lots) == hold.points for hold in open_holds)
    assert member.pending == lots.get(True, 0)
    assert max(member.available, 0) == lots.get(False, 0)
    assert negative_lots == 0
