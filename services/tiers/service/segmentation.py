"""Segments: the run that scores every member (every 15 minutes), a member's segment as it left it, the
lifecycle a purchase or refund moves at once, and the analytics summary read from what is stored. The rules
are in ``domain.segments``; this module gathers the purchases and keeps the rows and announcements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers import schemas
from services.tiers.domain import segments
from services.tiers.models import Base, Member, PointsBalance, Purchase, Segment, SegmentRun
from services.tiers.service import OUTBOX
from services.tiers.service.formats import amount
from services.tiers.service.members import get_member
from services.tiers.service.program import load_program
from shared.clock import utcnow
from shared.db.database import Database
from shared.db.statements import insert_ignoring_conflicts
from shared.messaging import events

RUN_TABLE = Base.metadata.tables["segment_run"]


async def recompute_segments(
    db: Database, *, now: datetime | None = None, params: segments.Params | None = None
) -> schemas.SegmentRunOut:
    """Segment every member in one pass and one transaction (the job, every 15 minutes, and
    ``loyalty jobs segments``): RFM scores, value class, lifecycle and CLV, and a ``member.segment_changed``
    for each member whose value class or lifecycle changed. Safe to repeat.

    The run's row lock keeps runs from overlapping; the segment rows are locked first, so a purchase that
    refreshes a lifecycle meanwhile waits and then builds on what this run wrote."""
    now = now or utcnow()
    params = params or segments.Params()
    async with db.transaction() as session:
        run = await _locked_run(session)
        stored = {row.member_id: row for row in (await session.execute(
            select(Segment).order_by(Segment.member_id).with_for_update()
        )).scalars()}
        facts = await _member_facts(session, now, params)
        results, overview = segments.segment_all(facts, now, params)
        announcements: list[events.EventData] = []
        for member in facts:
            segment = results[member.member_id]
            row = stored.get(member.member_id)
            if row is None:
                row = Segment(member_id=member.member_id, changed_at=now)
                session.add(row)
            rfm = events.RfmScores(recency=segment.recency, frequency=segment.frequency, monetary=segment.monetary)
            if (row.value_class, row.lifecycle) != (segment.value_class, segment.lifecycle):
                announcements.append(segment_changed(row.member_id, row.value_class, row.lifecycle,
                                                     segment.value_class, segment.lifecycle, rfm, now))
                row.changed_at = now
            row.recency, row.frequency, row.monetary = rfm.recency, rfm.frequency, rfm.monetary
            row.value_class, row.lifecycle = segment.value_class, segment.lifecycle
            row.clv_estimate = segment.clv_estimate
            row.revenue = member.history.window_revenue
            row.purchases = member.history.window_purchases
            row.last_purchase_at = member.history.last_at
        run.computed_at = now
        run.window_days, run.recency_days, run.new_days = params.window_days, params.recency_days, params.new_days
        run.members, run.scored, run.revenue = len(facts), overview.scored, overview.revenue
        run.top_20pct_revenue_share = _ratio(overview.top_20pct_revenue_share)
        run.retention_rate = _ratio(overview.retention_rate)
        run.expected_lifetime_years = overview.expected_lifetime_years.quantize(Decimal("0.0001"))
        await session.flush()
        await OUTBOX.add(session, *announcements)
    return schemas.SegmentRunOut(computed_at=now, members=len(facts), scored=overview.scored,
                                 changed=len(announcements))


async def last_segmented_at(db: Database) -> datetime | None:
    """When the last segmentation run ran, None before the first."""
    async with db.read() as session:
        run = await last_run(session)
    return run.computed_at if run else None


async def member_segment(
    session: AsyncSession, member_id: str, params: segments.Params, *, now: datetime | None = None
) -> schemas.MemberSegment:
    """The member's segment as the last run left it; before the member's first run, RFM 1 and class D, with
    lifecycle and CLV computed now from the member's own purchases (``computed_at`` null)."""
    now = now or utcnow()
    member = await get_member(session, member_id)
    run = await last_run(session)
    row = await session.get(Segment, member_id)
    if row is not None and run is not None:
        return schemas.MemberSegment(
            member_id=member_id,
            rfm=schemas.Rfm(recency=row.recency, frequency=row.frequency, monetary=row.monetary),
            value_class=cast(segments.ValueClass, row.value_class), lifecycle=cast(segments.Lifecycle, row.lifecycle),
            clv_estimate=amount(row.clv_estimate, "spend"), computed_at=run.computed_at,
        )
    history = (await histories(session, now, params, [member_id])).get(member_id, segments.History())
    lifetime = run.expected_lifetime_years if run is not None else segments.expected_lifetime_years(None)
    segment = segments.unscored(segments.MemberFacts(member_id, member.status, enrolled(member), history),
                                now, params, lifetime)
    return schemas.MemberSegment(
        member_id=member_id, rfm=schemas.Rfm(recency=1, frequency=1, monetary=1), value_class="D",
        lifecycle=segment.lifecycle, clv_estimate=amount(segment.clv_estimate, "spend"), computed_at=None,
    )


async def analytics_summary(session: AsyncSession) -> schemas.AnalyticsSummary:
    """Counts read from the stored tiers and segments (GROUP BY), the Pareto share of the last run and
    the points liability; nothing is recomputed here."""
    program = await load_program(session)
    by_tier = dict.fromkeys(program.ladder, 0) | await _counts(session, Member.tier_id)
    by_status = {"active": 0, "suspended": 0, "closed": 0} | {
        status or "unknown": count for status, count in (await _counts(session, Member.status)).items()}
    by_class = dict.fromkeys(segments.VALUE_CLASSES, 0) | await _counts(session, Segment.value_class)
    by_lifecycle = dict.fromkeys(segments.LIFECYCLES, 0) | await _counts(session, Segment.lifecycle)
    # points in a checkout's hold are out of available but still owed until captured
    outstanding = PointsBalance.available + PointsBalance.pending + PointsBalance.held
    liability = (await session.execute(
        select(func.coalesce(func.sum(case((outstanding > 0, outstanding), else_=0)), 0))
    )).scalar_one()
    run = await last_run(session)
    return schemas.AnalyticsSummary(
        members=sum(by_tier.values()), by_tier=by_tier, by_status=by_status, by_value_class=by_class,
        by_lifecycle=by_lifecycle,
        pareto=schemas.Pareto(top_20pct_revenue_share=_float(run.top_20pct_revenue_share) if run else None),
        points_liability=int(liability),
        segments=schemas.SegmentsInfo(
            computed_at=run.computed_at, segmented=sum(by_class.values()), scored=run.scored,
            window_days=run.window_days, recency_threshold_days=run.recency_days, new_member_days=run.new_days,
            revenue=amount(run.revenue, "spend"), retention_rate=_float(run.retention_rate),
            expected_lifetime_years=float(run.expected_lifetime_years),
        ) if run else None,
    )


async def restore_announced_segment(
    session: AsyncSession, data: events.MemberSegmentChanged, *, now: datetime | None = None
) -> None:
    """For a rebuild only: take the segment a ``member.segment_changed`` in the log announced as the
    member's stored one, so the rebuilt service announces only what changed since. (The live service
    ignores its own announcements.)"""
    if await session.get(Member, data.member_id) is None:
        return
    row = await session.get(Segment, data.member_id, with_for_update=True)
    if row is None:
        row = Segment(member_id=data.member_id, clv_estimate=Decimal(0), revenue=Decimal(0), purchases=0)
        session.add(row)
    row.recency, row.frequency, row.monetary = data.rfm.recency, data.rfm.frequency, data.rfm.monetary
    row.value_class, row.lifecycle, row.changed_at = data.value_class, data.lifecycle, data.at
    await session.flush()


async def refresh_lifecycles(session: AsyncSession, members: Sequence[Member], now: datetime) -> None:
    """A purchase or refund moves a segmented member's lifecycle at once (a lapsed member who buys is won
    back now, not at the next run), with the settings of the last run; the rest waits for the next run."""
    run = await last_run(session)
    if run is None or not members:
        return
    rows = {row.member_id: row for row in (await session.execute(
        select(Segment).where(Segment.member_id.in_([m.member_id for m in members]))
        .order_by(Segment.member_id).with_for_update()
    )).scalars()}
    if not rows:
        return
    params = run_params(run)
    found = await histories(session, now, params, list(rows))
    for member in members:
        row = rows.get(member.member_id)
        if row is None:
            continue
        lifecycle = segments.lifecycle(enrolled(member), found.get(member.member_id, segments.History()), now, params)
        if lifecycle == row.lifecycle:
            continue
        rfm = events.RfmScores(recency=row.recency, frequency=row.frequency, monetary=row.monetary)
        await OUTBOX.add(session, segment_changed(row.member_id, row.value_class, row.lifecycle, row.value_class,
                                                  lifecycle, rfm, now))
        row.lifecycle, row.changed_at = lifecycle, now
    await session.flush()


def segment_changed(
    member_id: str, previous_value_class: str | None, previous_lifecycle: str | None, value_class: str,
    lifecycle: str, rfm: events.RfmScores, now: datetime,
) -> events.MemberSegmentChanged:
    """The announcement of a change from what the stored row held (a new row has no class yet)."""
    return events.MemberSegmentChanged(
        member_id=member_id, value_class=cast(segments.ValueClass, value_class),
        lifecycle=cast(segments.Lifecycle, lifecycle),
        previous_value_class=cast(segments.ValueClass | None, previous_value_class),
        previous_lifecycle=cast(segments.Lifecycle | None, previous_lifecycle), rfm=rfm, at=now,
    )


async def last_run(session: AsyncSession) -> SegmentRun | None:
    """The last segmentation run, None before the first."""
    run = await session.get(SegmentRun, 1)
    return run if run is not None and run.computed_at is not None else None


def run_params(run: SegmentRun) -> segments.Params:
    """The settings a run segmented with, which lifecycles moved between runs follow."""
    return segments.Params(window_days=run.window_days, recency_days=run.recency_days, new_days=run.new_days)


async def _locked_run(session: AsyncSession) -> SegmentRun:
    """The run's row, created if missing and locked until the caller's transaction ends."""
    await session.execute(insert_ignoring_conflicts(RUN_TABLE, session.get_bind().dialect.name).values(
        id=1, computed_at=None, window_days=0, recency_days=0, new_days=0, members=0, scored=0, revenue=Decimal(0),
        top_20pct_revenue_share=None, retention_rate=None, expected_lifetime_years=Decimal(1),
    ))
    run = await session.get(SegmentRun, 1, with_for_update=True)
    assert run is not None
    return run


def enrolled(member: Member) -> datetime:
    """When the member joined: the enrolment, or when tiers first saw them if it never heard of it."""
    return member.enrolled_at or member.first_seen_at


async def scored_revenues(session: AsyncSession, now: datetime, params: segments.Params) -> list[Decimal]:
    """The window revenue of each member of the scored base as of ``now``: what the Pareto figures are
    taken over (the dashboard's curve)."""
    return [m.history.window_revenue for m in await _member_facts(session, now, params) if m.scored]


async def _member_facts(session: AsyncSession, now: datetime, params: segments.Params) -> list[segments.MemberFacts]:
    found = await histories(session, now, params)
    members = (await session.execute(
        select(Member.member_id, Member.status, Member.enrolled_at, Member.first_seen_at).order_by(Member.member_id)
    )).all()
    return [segments.MemberFacts(m.member_id, m.status, m.enrolled_at or m.first_seen_at,
                                 found.get(m.member_id, segments.History())) for m in members]


async def histories(
    session: AsyncSession, now: datetime, params: segments.Params, member_ids: list[str] | None = None
) -> dict[str, segments.History]:
    """Each member's purchases folded into their History, streamed member by member."""
    query = (select(Purchase.member_id, Purchase.occurred_at, Purchase.total, Purchase.refunded)
             .order_by(Purchase.member_id).execution_options(yield_per=2000))
    if member_ids is not None:
        query = query.where(Purchase.member_id.in_(member_ids))
    found: dict[str, segments.History] = {}
    current: str | None = None
    bought: list[segments.Purchase] = []
    async for row in await session.stream(query):
        if row.member_id != current:
            if current is not None:
                found[current] = segments.summarize(bought, now, params)
            current, bought = row.member_id, []
        bought.append(segments.Purchase(row.occurred_at, row.total - row.refunded))
    if current is not None:
        found[current] = segments.summarize(bought, now, params)
    return found


async def _counts(session: AsyncSession, column: Any) -> dict[Any, int]:
    rows = (await session.execute(select(column, func.count()).group_by(column))).all()
    return {value: count for value, count in rows}


def _ratio(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("0.00001"))


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
