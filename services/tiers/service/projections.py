"""What the operator dashboard shows, built from events like the rest of tiers: redemptions per reward (from
``loyalty.redemptions``, kept here) and points issued, spent and expired per ISO week (from ``points.*``,
kept by ``points``); the reads here gather every figure of the page (``api.dashboard`` draws them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers import schemas
from services.tiers.domain import figures
from services.tiers.models import PointsWeek, Redemption, SegmentRun
from services.tiers.service.program import load_program
from services.tiers.service.segmentation import analytics_summary, run_params, scored_revenues
from shared.clock import utcnow
from shared.messaging import events

CONFIRMED, CANCELLED = "confirmed", "cancelled"
WEEKS = 12
TOP_REWARDS = 10


# --- the use case (one event each) ---------------------------------------------------------------------


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


@dataclass(frozen=True)
class Dashboard:
    as_of: datetime
    summary: schemas.AnalyticsSummary
    tier_names: dict[str, str]  # tier_id -> name, lowest first
    curve: list[figures.CurvePoint]
    weeks: list[figures.WeekPoints]
    rewards: list[RewardCount]


async def gather(session: AsyncSession, now: datetime | None = None) -> Dashboard:
    """Every figure of the page, in the one read transaction the page is drawn from."""
    now = now or utcnow()
    program = await load_program(session)
    return Dashboard(
        as_of=now, summary=await analytics_summary(session),
        tier_names={tier.tier_id: tier.name or tier.tier_id for tier in program.tiers},
        curve=await pareto_curve(session),
        weeks=await weekly_points(session, now, WEEKS),
        rewards=await top_rewards(session, TOP_REWARDS),
    )


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
    revenues: list[Decimal] = await scored_revenues(session, run.computed_at, run_params(run))
    return figures.pareto_curve(revenues)
