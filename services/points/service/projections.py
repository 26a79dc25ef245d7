"""What points keeps of other services' state, as their events tell it: a member's tier and its earning
multiplier (from tiers), so a purchase earns without asking another service; the member's value class and
lifecycle (from tiers' segments), for the operator's search."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.points.models import Member
from shared.messaging import events
from shared.messaging.consumer import EventRefused


async def apply_tier_change(session: AsyncSession, data: events.TierChanged) -> None:
    """Remember the member's tier so that later purchases earn with its multiplier. points owns the members:
    a tier change about one it never enrolled is not believed (it goes to the dead letters)."""
    await _remember(session, data, tier_id=data.to_tier, earn_multiplier=data.earn_multiplier)


async def apply_segment_change(session: AsyncSession, data: events.MemberSegmentChanged) -> None:
    """Remember the member's value class and lifecycle for the operator's search; like a tier change, one
    about a member points never enrolled is refused."""
    await _remember(session, data, value_class=data.value_class, lifecycle=data.lifecycle)


async def _remember(session: AsyncSession, data: events.EventData, **values: Any) -> None:
    """Write what the event tells onto the member row; an event about a member points never enrolled is
    refused (it goes to the dead letters)."""
    member_id = data.member_id
    changed = (await session.execute(
        update(Member).where(Member.member_id == member_id).values(**values).returning(Member.member_id)
    )).first()
    if changed is None:
        raise EventRefused(f"{data.TYPE} about member {member_id!r}, whom points never enrolled")
