"""What points keeps of other services' state, as their events tell it: a member's tier and its earning
multiplier (from tiers), so a purchase earns without asking another service."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.points.models import Member
from shared.messaging import events
from shared.messaging.consumer import EventRefused


async def apply_tier_change(session: AsyncSession, data: events.TierChanged) -> None:
    """Remember the member's tier so that later purchases earn with its multiplier. points owns the members:
    a tier change about one it never enrolled is not believed (it goes to the dead letters)."""
    changed = (await session.execute(
        update(Member).where(Member.member_id == data.member_id)
        .values(tier_id=data.to_tier, earn_multiplier=data.earn_multiplier).returning(Member.member_id)
    )).first()
    if changed is None:
        raise EventRefused(f"tier.changed about member {data.member_id!r}, whom points never enrolled")
