"""``points.*`` events: each member's balance (the points liability is their sum), the points issued, spent
and expired per ISO week (the dashboard's figure), and the points of purchases (the points basis).

Every purchase brings tiers a ``points.earned`` beside its ``purchase.recorded``, and a redemption a
``points.spent``: one at a time, each cost some ten statements (the balance, the week's figure, the purchase,
an evaluation). A consumer batch of them costs a few statements in all: each member's balance as its last
event tells it, the points moved per member and week summed, and one evaluation of each member whose
purchases the events confirm. The consumer hands consecutive events of one type to the ``*_batch`` use
cases (``consumers.BATCH_HANDLERS``) and falls back to the one-event ones when a batch fails; those hand
their event on as a batch of one, so there is one way to keep each figure and both leave the same state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers.domain import figures
from services.tiers.models import Base, Member, Purchase
from services.tiers.service.evaluation import settle
from services.tiers.service.program import program_for_evaluation
from services.tiers.service.purchases import refund_row, sync_refunds
from shared.clock import utcnow
from shared.db.statements import upsert
from shared.messaging import events
from shared.messaging.events import EventData

BALANCE_TABLE = Base.metadata.tables["points_balance"]
WEEK_TABLE = Base.metadata.tables["points_week"]
# The kinds of the week's figure (issued: earned and bonus; spent: redemptions and checkout captures). A hold
# and its release only move points between available and held: nothing is issued, spent or expired by them.
KIND_OF: dict[type[EventData], figures.PointsKind] = {
    events.PointsEarned: "issued",
    events.PointsSpent: "spent",
    events.PointsExpired: "expired",
}


async def record_points_earned(
    session: AsyncSession, data: events.PointsEarned, *, now: datetime | None = None
) -> None:
    """Keep the balance and the week's points, and confirm a purchase's points. Only the buyer's own
    purchase counts: a referral bonus names the referred member's purchase, and points not tied to a
    purchase (enrolment, referral) do not qualify. When the purchase is not known yet its
    ``purchase.recorded`` brings the same figure."""
    await record_points_earned_batch(session, [data], now=now)


async def record_points_earned_batch(
    session: AsyncSession, batch: Sequence[events.PointsEarned], *, now: datetime | None = None
) -> None:
    """``record_points_earned`` for a run of events.

    A ``points.earned`` repeats the points its ``purchase.recorded`` brought, so evaluating each member once
    after the run gives what evaluating after each event gives. A run with an event that tells another
    figure (a purchase stored from an older event, say) goes one event at a time, in order."""
    now = now or utcnow()
    await session.flush()
    # A bonus's purchase_id only says which purchase it was for (a referral's, to both sides): it confirms no
    # purchase's points.
    tied = [data for data in batch if data.purchase_id is not None and data.kind == "earn"]
    # populate_existing: rows the bulk writes of earlier runs changed are read again, not taken as the session
    # last saw them.
    purchases = {purchase.purchase_id: purchase for purchase in (await session.execute(
        select(Purchase).where(Purchase.purchase_id.in_([data.purchase_id for data in tied]))
        .execution_options(populate_existing=True)
    )).scalars()} if tied else {}
    confirmed = [data for data in tied if data.purchase_id in purchases
                 and purchases[data.purchase_id].member_id == data.member_id]
    if len(batch) > 1 and any(purchases[data.purchase_id].points_earned != data.points
                              for data in confirmed if data.purchase_id):
        for data in batch:
            await record_points_earned_batch(session, [data], now=now)
        return
    await record_points_moved_batch(session, batch, now=now)
    if confirmed:
        program = await program_for_evaluation(session)
        member_ids = sorted({data.member_id for data in confirmed})
        members = (await session.execute(
            select(Member).where(Member.member_id.in_(member_ids)).order_by(Member.member_id).with_for_update()
            .execution_options(populate_existing=True)
        )).scalars().all()
        for data in confirmed:  # the figure told; in a run of more than one, what is stored already
            if data.purchase_id:
                purchases[data.purchase_id].points_earned = data.points
        await settle(session, members, program, now)


async def record_points_reversed(
    session: AsyncSession, data: events.PointsReversed, *, now: datetime | None = None
) -> None:
    """Keep the balance and store the points a refund took back; they count once the purchase is known. A
    referral bonus taken back (``kind`` bonus) only moves the balance: its refund's own event tells the
    purchase's points."""
    now = now or utcnow()
    await record_points_moved_batch(session, [data], now=now)
    if data.kind == "bonus":
        return
    program = await program_for_evaluation(session)
    member = await session.get(Member, data.member_id, with_for_update=True)
    refund = await refund_row(session, data.refund_id, data.purchase_id, data.member_id)
    refund.points_reversed = data.points
    purchase = await session.get(Purchase, data.purchase_id)
    if member is None or purchase is None or purchase.member_id != data.member_id:
        await session.flush()
        return
    await sync_refunds(session, [purchase])
    await settle(session, [member], program, now)


async def record_points_moved(session: AsyncSession, data: events.PointsEvent, *, now: datetime | None = None) -> None:
    """Any other ``points.*`` event: keep the member's balance as the event tells it and, for the kinds the
    dashboard counts (spent, expired), add its points to the member's week."""
    await record_points_moved_batch(session, [data], now=now)


async def record_points_moved_batch(
    session: AsyncSession, batch: Sequence[events.PointsEvent], *, now: datetime | None = None
) -> None:
    """The balances and the weeks' points of a run of events, in two statements. A member's events come in
    order, so its last one is the balance now. A week is the one the event reached tiers in: the wall clock
    live, the time the event was written in a rebuild (the two differ only by the consumer's lag)."""
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    last = {data.member_id: data for data in batch}
    await session.execute(upsert(BALANCE_TABLE, dialect, ["member_id"]), [
        {"member_id": member_id, "available": data.balance.available, "pending": data.balance.pending,
         "held": data.balance.held, "updated_at": now}
        for member_id, data in last.items()
    ])
    week = figures.week_of(now)
    moved: dict[tuple[str, str], int] = {}
    for data in batch:
        kind = KIND_OF.get(type(data))
        if kind is not None:
            moved[(kind, data.member_id)] = moved.get((kind, data.member_id), 0) + abs(data.points)
    if moved:
        await session.execute(upsert(WEEK_TABLE, dialect, ["week", "kind", "member_id"], add=["points"]), [
            {"week": week, "kind": kind, "member_id": member_id, "points": points}
            for (kind, member_id), points in moved.items()
        ])
