"""How a pending redemption is settled: points' answers confirm it (with a new voucher) or reject it (its stock
released), and points is asked again while its answer is overdue.

The settlements take a batch of points' answers (the consumer's batch handlers; one event is a batch of one):
a few statements for the whole batch, each redemption settled by a conditional UPDATE that only a pending
redemption passes, so a duplicate or late answer changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import and_, case, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards import domain, schemas
from services.rewards.models import Base, Redemption
from services.rewards.service import members
from services.rewards.service.saga import OUTBOX, REDEMPTIONS, SETTLED, give_back_stock, redemption_event
from shared.clock import utcnow
from shared.db.database import unit_of_work
from shared.db.statements import insert_ignoring_conflicts
from shared.messaging import events

CODE_ATTEMPTS = 5
VOUCHERS = Base.metadata.tables["voucher"]


async def confirm_redemption(session: AsyncSession, data: events.PointsSpent) -> None:
    await confirm_redemptions(session, [data])


async def confirm_redemptions(session: AsyncSession, batch: Sequence[events.PointsSpent]) -> None:
    """Points were taken: each redemption still pending is confirmed with a new voucher. A checkout's capture
    (``hold_id``, no ``redemption_id``) pays for no redemption: only its balance is kept."""
    await members.record_balances(session, [(data.member_id, data.balance.available) for data in batch])
    codes = {data.redemption_id: domain.new_voucher_code() for data in batch if data.redemption_id is not None}
    if not codes:
        return
    confirmed = await _settle(session, list(codes), status="confirmed",
                              voucher_code=case(codes, value=REDEMPTIONS.c.redemption_id))
    if not confirmed:
        return
    await issue_vouchers(session, confirmed)
    await OUTBOX.add(session, *[redemption_event(redemption, events.RedemptionConfirmed)
                                for redemption in confirmed])
    _mark_settled(session, confirmed)


async def reject_redemption(session: AsyncSession, data: events.PointsSpendDeclined) -> None:
    await reject_redemptions(session, [data])


async def reject_redemptions(session: AsyncSession, batch: Sequence[events.PointsSpendDeclined]) -> None:
    """Points declined: each redemption still pending is rejected with points' reason and its stock released."""
    reasons: dict[str, str] = {}
    for data in batch:
        reasons.setdefault(data.redemption_id, data.reason)  # the first answer settles it, as one by one
    rejected = await _settle(session, list(reasons), status="rejected",
                             reason=case(reasons, value=REDEMPTIONS.c.redemption_id))
    if not rejected:
        return
    units: dict[str, int] = {}
    for redemption in rejected:
        units[redemption.reward_id] = units.get(redemption.reward_id, 0) + redemption.quantity
    await give_back_stock(session, units)
    await OUTBOX.add(session, *[redemption_event(r, events.RedemptionRejected, reason=r.reason) for r in rejected])
    _mark_settled(session, rejected)


async def _settle(session: AsyncSession, redemption_ids: list[str], **values: Any) -> list[schemas.Redemption]:
    """Moves the pending ones among ``redemption_ids`` out of pending in one statement (which locks them);
    returns them as settled, in the order of ``redemption_ids`` (the order their answers came in)."""
    rows = (await session.execute(
        update(REDEMPTIONS)
        .where(REDEMPTIONS.c.redemption_id.in_(redemption_ids), REDEMPTIONS.c.status == "pending")
        .values(updated_at=utcnow(), **values)
        .returning(*REDEMPTIONS.c)
    )).all()
    order = {redemption_id: index for index, redemption_id in enumerate(redemption_ids)}
    settled = [schemas.Redemption.model_validate(row._asdict()) for row in rows]
    return sorted(settled, key=lambda redemption: order[redemption.redemption_id])


async def issue_vouchers(session: AsyncSession, confirmed: list[schemas.Redemption]) -> None:
    """The vouchers of the codes the redemptions were given (by ``_settle``, or a goal's reward as it is
    stored); a code already taken is drawn again (a 1 in 2**75 event per pair) and its redemption updated,
    until every voucher is in."""
    dialect = session.get_bind().dialect.name
    now = utcnow()
    waiting = {redemption.redemption_id: redemption for redemption in confirmed}
    for _ in range(CODE_ATTEMPTS):
        inserted = set((await session.execute(
            insert_ignoring_conflicts(VOUCHERS, dialect).returning(VOUCHERS.c.redemption_id),
            [{"code": r.voucher_code, "redemption_id": r.redemption_id, "reward_id": r.reward_id,
              "member_id": r.member_id, "status": "active", "created_at": now} for r in waiting.values()],
        )).scalars())
        waiting = {key: r for key, r in waiting.items() if key not in inserted}
        if not waiting:
            return
        for redemption in waiting.values():
            redemption.voucher_code = domain.new_voucher_code()
            await session.execute(update(REDEMPTIONS).where(REDEMPTIONS.c.redemption_id == redemption.redemption_id)
                                  .values(voucher_code=redemption.voucher_code))
    raise RuntimeError(f"no free voucher code after {CODE_ATTEMPTS} attempts")


def _mark_settled(session: AsyncSession, settled: list[schemas.Redemption]) -> None:
    """For ``waiting.Settlements``: the requests waiting on these get them once the transaction commits."""
    if settled:
        unit_of_work(session).on_commit(partial(SETTLED.emit, settled))


async def reask_overdue(session: AsyncSession, *, now: datetime, retry_seconds: float, retry_max_seconds: float,
                        limit: int) -> list[Redemption]:
    """Ask points again for up to ``limit`` pending redemptions whose answer is overdue (see
    ``domain.reask_delays``): another ``redemption.requested`` with the same redemption id and terms. Rows
    another transaction holds (a settlement, another instance's re-ask) are skipped, not waited for."""
    delays = domain.reask_delays(retry_seconds, retry_max_seconds)
    overdue = [and_(Redemption.asks == asks, Redemption.last_requested_at <= now - timedelta(seconds=delay))
               for asks, delay in enumerate(delays[:-1], start=1)]
    overdue.append(and_(Redemption.asks >= len(delays),
                        Redemption.last_requested_at <= now - timedelta(seconds=delays[-1])))
    rows = list((await session.execute(
        select(Redemption)
        # a literal, not a parameter, so PostgreSQL can use the partial index ix_redemption_pending_asked
        .where(Redemption.status == literal_column("'pending'"),
               Redemption.last_requested_at <= now - timedelta(seconds=delays[0]), or_(*overdue))
        .order_by(Redemption.last_requested_at).limit(limit)
        .with_for_update(skip_locked=True)
    )).scalars())
    for redemption in rows:
        redemption.asks += 1
        redemption.last_requested_at = now
    await session.flush()
    await OUTBOX.add(session, *[redemption_event(r, events.RedemptionRequested) for r in rows], repeated=True)
    return rows
