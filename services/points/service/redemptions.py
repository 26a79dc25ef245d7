"""Redemptions asked for by rewards: their points paid (or the request declined) exactly once, a batch at a
time, and given back once when a redemption is cancelled."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain
from services.points.models import Lot, Member, RedemptionDebit
from services.points.service import OUTBOX, ledger
from services.points.service.members import locked_member, settle, snapshot
from services.points.service.program import get_program
from shared.clock import utcnow
from shared.messaging import events


async def pay_redemption(session: AsyncSession, data: events.RedemptionRequested) -> None:
    """Debit a redemption's points or decline it. Asked again, answer the same way without paying twice."""
    await pay_redemptions(session, [data])


async def pay_redemptions(session: AsyncSession, batch: Sequence[events.RedemptionRequested]) -> None:
    """``pay_redemption`` for a consumer batch, each request decided in order as if alone: what was decided
    before and the members (locked, in id order) are read once for the batch, and only members with a due
    lot or a hold (``settle`` gives back the holds past their time) are settled first, as every use case that
    moves points does."""
    now = utcnow()
    ids = list(dict.fromkeys(data.redemption_id for data in batch))
    decided = {debit.redemption_id: debit for debit in (await session.execute(
        select(RedemptionDebit).where(RedemptionDebit.redemption_id.in_(ids)))).scalars()}
    member_ids = sorted({data.member_id for data in batch} | {debit.member_id for debit in decided.values()})
    members = {member.member_id: member for member in (await session.execute(
        select(Member).where(Member.member_id.in_(member_ids)).order_by(Member.member_id).with_for_update()
    )).scalars()}
    due = set((await session.execute(
        select(Lot.member_id).where(Lot.member_id.in_(list(members)), ledger.due_lots_clause(now)).distinct()
    )).scalars())
    due |= {member_id for member_id, member in members.items() if member.held > 0}  # a hold may be past its time
    for member_id in sorted(due):
        await settle(session, members[member_id])
    for data in batch:
        seen = decided.get(data.redemption_id)
        if seen is not None:
            await OUTBOX.add(session, _redemption_answer(seen, members.get(seen.member_id)), repeated=True)
            continue
        member = members.get(data.member_id)
        reason = None
        if member is None:
            reason = "member-not-found"
        elif member.status != "active":
            reason = "member-inactive"
        elif member.available < data.points_cost:
            reason = "insufficient-points"
        debit = decided[data.redemption_id] = RedemptionDebit(
            redemption_id=data.redemption_id, member_id=data.member_id, points=data.points_cost,
            outcome="declined" if reason else "spent", reason=reason, refunded=False, decided_at=utcnow(),
        )
        session.add(debit)
        if member is not None and reason is None:
            await ledger.debit(session, member, "spend", data.points_cost, redemption_id=data.redemption_id)
        await OUTBOX.add(session, _redemption_answer(debit, member))
    await session.flush()


async def refund_redemption(session: AsyncSession, data: events.RedemptionCancelled) -> None:
    """A cancelled redemption gives its points back once, as a new lot with the program's expiry."""
    debit = await session.get(RedemptionDebit, data.redemption_id, with_for_update=True)
    if debit is None or debit.outcome != "spent" or debit.refunded:
        return
    member = await locked_member(session, debit.member_id)
    program = await get_program(session)
    debit.refunded = True
    member.lifetime_spent -= debit.points
    await ledger.credit(session, member, "refund", debit.points, redemption_id=debit.redemption_id,
                        expires_at=domain.expiry_for(utcnow(), program.expiry_days))
    await OUTBOX.add(session, events.PointsRefunded(member_id=member.member_id, redemption_id=debit.redemption_id,
                                                    points=debit.points, balance=snapshot(member)))


def _redemption_answer(debit: RedemptionDebit, member: Member | None) -> events.EventData:
    if debit.outcome == "spent":
        assert member is not None
        return events.PointsSpent(member_id=debit.member_id, redemption_id=debit.redemption_id,
                                  points=debit.points, balance=snapshot(member))
    return events.PointsSpendDeclined(member_id=debit.member_id, redemption_id=debit.redemption_id,
                                      points=debit.points, reason=debit.reason)
