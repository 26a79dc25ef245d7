"""The dashboard's projections, built from events like the rest of tiers: points issued, spent and expired
per ISO week (from ``points.*``), and redemptions per reward (from ``loyalty.redemptions``). Use cases here
take one event each (see ``consumers.USE_CASES``); the reads gather what the dashboard shows.

A week is the one the event reached tiers in: the wall clock live, the time the event was written in a
rebuild (the two differ only by the consumer's lag).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers import figures, segments, service
from services.tiers.models import Base, PointsWeek, Redemption, SegmentRun
from shared.clock import utcnow
from shared.db.statements import insert_ignoring_conflicts
from shared.messaging import events

WEEK_TABLE = Base.metadata.tables["points_week"]
KIND_OF: dict[type[events.EventData], figures.PointsKind] = {
    events.PointsEarned: "issued",
    events.PointsSpent: "spent",
    events.PointsExpired: "expired",
}
CONFIRMED, CANCELLED = "confirmed", "cancelled"


# --- use cases (one event each) ----------------------------------------------------------------------


async def record_points_moved(session: AsyncSession, data: events.PointsEvent, *, now: datetime | None = None) -> None:
    """Add the event's points to the member's week and kind (issued: earned and bonus; spent; expired)."""
    key = {"week": figures.week_of(now or utcnow()), "kind": KIND_OF[type(data)], "member_id": data.member_id}
    await session.execute(insert_ignoring_conflicts(WEEK_TABLE, session.get_bind().dialect.name)
                          .values(**key, points=0))
    row = await session.get(PointsWeek, tuple(key.values()), with_for_update=True)
    assert row is not None
    row.points += abs(data.points)
    await session.flush()


async def record_redemption(
    session: AsyncSession, data: events.RedemptionConfirmed | events.RedemptionCancelled, *,
    now: datetime | None = None,
) -> None:
    """A confirmed redemption counts for its reward; a cancelled one no longer does, and stays cancelled
    whatever comes after (a member's events come in order, so a late confirmation means a replay)."""
    status = CANCELLED if isinstance(data, events.RedemptionCancelled) else CONFIRMED
    row = await session.get(Redemption, data.redemption_id, with_for_update=True)
    if row is None:
        row = Redemption(redemption_id=data.redemption_id)
        session.add(row)
    elif row.status == CANCELLED:
        return
    row.member_id, row.reward_id = data.member_id, data.reward_id
    row.quantity, row.points_cost, row.status = data.quantity, data.points_cost, status
    row.updated_at = now or utcnow()
    await session.flush()


# --- reads ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RewardCount:
    reward_id: str
    redemptions: int  # confirmed and not cancelled, by quantity
    points: int


async def weekly_points(session: AsyncSession, until: datetime, weeks: int) -> list[figures.WeekPoints]:
    first = figures.week_of(until) - timedelta(weeks=weeks - 1)
    rows = (await session.execute(
        select(PointsWeek.week, PointsWeek.kind, func.sum(PointsWeek.points)).where(PointsWeek.week >= first)
        .group_by(PointsWeek.week, PointsWeek.kind)
    )).all()
    return figures.weekly_points(((week, kind, int(points)) for week, kind, points in rows), until, weeks)


async def top_rewards(session: AsyncSession, limit: int) -> list[RewardCount]:
    """The rewards most redeemed (confirmed, not cancelled), by quantity, then by points."""
    redemptions = func.sum(Redemption.quantity)
    points = func.sum(Redemption.points_cost)
    rows = (await session.execute(
        select(Redemption.reward_id, redemptions, points).where(Redemption.status == CONFIRMED)
        .group_by(Redemption.reward_id).order_by(redemptions.desc(), points.desc(), Redemption.reward_id)
        .limit(limit)
    )).all()
    return [RewardCount(reward_id, int(count), int(spent)) for reward_id, count, spent in rows]


async def pareto_curve(session: AsyncSession) -> list[figures.CurvePoint]:
    """The Lorenz curve of the last segmentation run's scored members: their window revenue recomputed as
    of that run with its settings, so the curve's 20% point is the run's Pareto share. Empty before it."""
    run = await session.get(SegmentRun, 1)
    if run is None or run.computed_at is None:
        return []
    params = segments.Params(window_days=run.window_days, recency_days=run.recency_days, new_days=run.new_days)
    revenues: list[Decimal] = await service.scored_revenues(session, run.computed_at, params)
    return figures.pareto_curve(revenues)
