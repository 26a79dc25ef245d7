"""What rewards knows of members, from the other services' events (it never reads their tables): each member's
status, tier and rank, and available points, and the tier ladder; kept by the consumers' use cases here and
read by the catalog's and the redemptions' checks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards import domain
from services.rewards.models import Base, Member, Tier
from shared.clock import utcnow
from shared.db.statements import insert_ignoring_conflicts, upsert
from shared.messaging import events

MEMBERS = Base.metadata.tables["member"]


# --- reads for the checks --------------------------------------------------------------------------


async def standing(session: AsyncSession, member_id: str) -> domain.MemberStanding:
    member = await session.get(Member, member_id)
    if member is None:
        return domain.MemberStanding()
    return domain.MemberStanding(tier_id=member.tier_id, tier_rank=member.tier_rank, available=member.available)


async def tier_ladder(session: AsyncSession) -> dict[str, int]:
    return {tier_id: rank for tier_id, rank in (await session.execute(select(Tier.tier_id, Tier.rank))).all()}


async def locked_member(session: AsyncSession, member_id: str) -> Member:
    """The member's projection row, created empty on first news, locked for the update."""
    await session.execute(
        insert_ignoring_conflicts(MEMBERS, session.get_bind().dialect.name)
        .values(member_id=member_id, tier_rank=0, available=0, updated_at=utcnow())
    )
    member = await session.get(Member, member_id, with_for_update=True, populate_existing=True)
    assert member is not None
    return member


# --- events from points, tiers and members ---------------------------------------------------------


async def record_balances(session: AsyncSession, balances: Sequence[tuple[str, int]]) -> None:
    """The balances points.* events carried, one upsert for all (events of one member arrive in order: the
    last one is current). Rows in member order, so concurrent upserts lock them in the same order. Executed
    with many rows, so the statement is compiled once whatever the batch's size."""
    if not balances:
        return
    now = utcnow()
    latest = dict(balances)
    dialect = session.get_bind().dialect.name
    await session.execute(upsert(MEMBERS, dialect, ["member_id"], only=["available", "updated_at"]), [
        {"member_id": member_id, "tier_rank": 0, "available": latest[member_id], "updated_at": now}
        for member_id in sorted(latest)])


async def record_points_event(session: AsyncSession, data: events.PointsEvent) -> None:
    await record_points_events(session, [data])


async def record_points_events(session: AsyncSession, batch: Sequence[events.PointsEvent]) -> None:
    """Any points.* event with a balance: keep the member's available points for the catalog's checks. Points
    in a checkout's hold are already out of ``available``, so points.held and points.released move it too."""
    await record_balances(session, [(data.member_id, data.balance.available) for data in batch])


async def record_member(session: AsyncSession, data: events.MemberEnrolled) -> None:
    member = await locked_member(session, data.member_id)
    member.status = data.status
    member.updated_at = utcnow()


async def apply_tier_change(session: AsyncSession, data: events.TierChanged) -> None:
    await apply_tier_changes(session, [data])


async def apply_tier_changes(session: AsyncSession, batch: Sequence[events.TierChanged]) -> None:
    """Remember each member's tier and rank (its last event: a member's events come in order), in one upsert,
    and the ladder the events carry unless a newer one is known, decided event by event in order."""
    now = utcnow()
    latest = {data.member_id: data for data in batch}
    dialect = session.get_bind().dialect.name
    await session.execute(upsert(MEMBERS, dialect, ["member_id"], only=["tier_id", "tier_rank", "updated_at"]), [
        {"member_id": member_id, "tier_id": data.to_tier, "tier_rank": data.rank, "available": 0, "updated_at": now}
        for member_id, data in sorted(latest.items())])
    with_ladder = [data for data in batch if data.ladder]
    if not with_ladder:
        return
    known: list[tuple[str, int, datetime]] = [
        (tier_id, rank, as_of) for tier_id, rank, as_of in (await session.execute(
            select(Tier.tier_id, Tier.rank, Tier.as_of))).all()]
    ladder = known
    for data in with_ladder:
        if {t: r for t, r, _ in ladder} == {t: r for r, t in enumerate(data.ladder)}:
            continue
        if ladder and max(as_of for _, _, as_of in ladder) > data.at:
            continue  # an older event that arrived late (events of different members are not ordered)
        ladder = [(tier_id, rank, data.at) for rank, tier_id in enumerate(data.ladder)]
    if ladder is not known:
        await session.execute(delete(Tier))
        session.add_all([Tier(tier_id=tier_id, rank=rank, as_of=as_of) for tier_id, rank, as_of in ladder])
        await session.flush()
