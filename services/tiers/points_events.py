"""``points.*`` events a consumer batch at a time.

Every purchase brings tiers a ``points.earned`` beside its ``purchase.recorded``, and a redemption a
``points.spent``: one at a time, each cost some ten statements (the balance, the week's figure, the purchase,
an evaluation). Here a run of them costs a few statements in all: each member's balance as its last event
tells it, the points moved per member and week summed, and one evaluation of each member whose purchases
the events confirm. The consumer hands consecutive events of one type here (``consumers.BATCH_HANDLERS``)
and falls back to the one-event use cases when a batch fails, so both leave the same state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers import figures, projections, service
from services.tiers.models import Base, Member, Purchase
from shared.clock import utcnow
from shared.db.statements import upsert
from shared.messaging import events

BALANCE_TABLE = Base.metadata.tables["points_balance"]


async def record_points_earned(
    session: AsyncSession, batch: Sequence[events.PointsEarned], *, now: datetime | None = None
) -> None:
    """``service.record_points_earned`` and ``projections.record_points_moved`` for a run of events.

    A ``points.earned`` repeats the points its ``purchase.recorded`` brought, so evaluating each member once
    after the run gives what evaluating after each event gives. A run with an event that tells another
    figure (a purchase stored from an older event, say) goes one event at a time, in order."""
    now = now or utcnow()
    await session.flush()
    tied = [data for data in batch if data.purchase_id is not None]
    # populate_existing: rows the bulk writes of earlier runs changed are read again, not taken as the session
    # last saw them.
    purchases = {purchase.purchase_id: purchase for purchase in (await session.execute(
        select(Purchase).where(Purchase.purchase_id.in_([data.purchase_id for data in tied]))
        .execution_options(populate_existing=True)
    )).scalars()} if tied else {}
    confirmed = [data for data in tied if data.purchase_id in purchases
                 and purchases[data.purchase_id].member_id == data.member_id]
    if any(purchases[data.purchase_id].points_earned != data.points for data in confirmed if data.purchase_id):
        for data in batch:
            await service.record_points_earned(session, data, now=now)
            await projections.record_points_moved(session, data, now=now)
        return
    await record_points_moved(session, batch, now=now)
    if confirmed:
        program = await service.program_for_evaluation(session)
        member_ids = sorted({data.member_id for data in confirmed})
        members = (await session.execute(
            select(Member).where(Member.member_id.in_(member_ids)).order_by(Member.member_id).with_for_update()
            .execution_options(populate_existing=True)
        )).scalars().all()
        await service.settle(session, members, program, now)


async def record_points_moved(
    session: AsyncSession, batch: Sequence[events.PointsEvent], *, now: datetime | None = None
) -> None:
    """``service.record_points_balance`` and, for the kinds the dashboard counts (earned, spent, expired),
    ``projections.record_points_moved`` for a run of events, in two statements."""
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    last = {data.member_id: data for data in batch}  # a member's events come in order: its last one is now
    await session.execute(upsert(BALANCE_TABLE, dialect, ["member_id"]), [
        {"member_id": member_id, "available": data.balance.available, "pending": data.balance.pending,
         "updated_at": now}
        for member_id, data in last.items()
    ])
    week = figures.week_of(now)
    moved: dict[tuple[str, str], int] = {}
    for data in batch:
        kind = projections.KIND_OF.get(type(data))
        if kind is not None:
            moved[(kind, data.member_id)] = moved.get((kind, data.member_id), 0) + abs(data.points)
    if moved:
        await session.execute(upsert(projections.WEEK_TABLE, dialect, ["week", "kind", "member_id"], add=["points"]), [
            {"week": week, "kind": kind, "member_id": member_id, "points": points}
            for (kind, member_id), points in moved.items()
        ])
