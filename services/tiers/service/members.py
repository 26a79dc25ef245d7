"""Members' tiers: the enrolment that introduces a member, what the API shows of their tier and its history,
and the hourly evaluation of the members whose retention has ended (the only ones time alone can move)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers import schemas
from services.tiers.domain import tiers
from services.tiers.errors import MemberNotFound
from services.tiers.models import Member, TierHistory
from services.tiers.service import BATCH_SIZE
from services.tiers.service.evaluation import known_member, settle, window_facts
from services.tiers.service.formats import amount, plain
from services.tiers.service.program import load_program, program_for_evaluation
from shared.clock import utcnow
from shared.db.database import Database
from shared.http.pagination import decode_cursor, encode_cursor
from shared.messaging import events


async def record_member(session: AsyncSession, data: events.MemberEnrolled, *, now: datetime | None = None) -> None:
    """``member.enrolled`` / ``member.updated``: a member not known yet starts at the lowest tier."""
    now = now or utcnow()
    member = await known_member(session, data.member_id, await program_for_evaluation(session), now)
    member.status = data.status
    member.enrolled_at = data.enrolled_at
    member.updated_at = now
    await session.flush()


async def member_tier(session: AsyncSession, member_id: str, *, now: datetime | None = None) -> schemas.MemberTier:
    """The member's tier and progress; the qualifying value is summed now, so purchases that left the
    window no longer count even before the next evaluation."""
    now = now or utcnow()
    member = await get_member(session, member_id)
    program = await load_program(session)
    window_start = program.window_start(now)
    facts = await window_facts(session, [member_id], window_start)
    value = tiers.qualifying_value(facts.get(member_id, ()), program.basis, window_start)
    rank = program.rank_of(member.tier_id)
    tier = program.tiers[rank] if rank is not None else None
    above = tiers.next_tier(program.tiers, member.tier_id)
    return schemas.MemberTier(
        member_id=member.member_id, tier_id=member.tier_id, name=tier.name if tier else member.tier_id,
        since=member.tier_since, retained_until=member.retained_until,
        qualifying_value=amount(value, program.basis), window_start=window_start,
        next_tier=schemas.NextTier(
            tier_id=above.tier_id, threshold=amount(above.threshold, program.basis),
            remaining=amount(max(above.threshold - value, Decimal(0)), program.basis),
        ) if above else None,
        earn_multiplier=plain(tier.earn_multiplier) if tier else "1",
    )


async def history_page(
    session: AsyncSession, member_id: str, limit: int, cursor: str | None
) -> tuple[list[schemas.HistoryEntry], str | None]:
    """Newest first, keyset on entry_id so a page costs the same however long the history is."""
    query = select(TierHistory).where(TierHistory.member_id == member_id)
    if cursor:  # read before any query: a forged cursor is a 422 on both databases
        (before,) = decode_cursor(cursor, (int,))
        query = query.where(TierHistory.entry_id < before)
    await get_member(session, member_id)
    rows = list((await session.execute(query.order_by(TierHistory.entry_id.desc()).limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [schemas.HistoryEntry(from_tier=r.from_tier, to_tier=r.to_tier, reason=r.reason, at=r.at) for r in rows]
    return items, encode_cursor([rows[-1].entry_id]) if more else None


async def get_member(session: AsyncSession, member_id: str) -> Member:
    """The member's row, or the problem an API answer gives for a member tiers has not heard of."""
    member = await session.get(Member, member_id)
    if member is None:
        raise MemberNotFound(f"No member '{member_id}' is known to tiers; members appear with their enrolment "
                             "or their first purchase.")
    return member


async def evaluate_all(db: Database, *, now: datetime | None = None, batch_size: int = BATCH_SIZE) -> int:
    """Evaluate every member whose retention has ended (one transaction per batch); returns how many
    changed tier.

    Nobody else can change by time alone: a purchase leaving the window only lowers the value, and a lower
    value matters only once retention has ended. Run again, it finds those members renewed or moved on.
    """
    now = now or utcnow()
    changed = 0
    last = ""
    while True:
        async with db.transaction() as session:
            program = await program_for_evaluation(session)
            members = list((await session.execute(
                select(Member).where(Member.retained_until <= now, Member.member_id > last)
                .order_by(Member.member_id).limit(batch_size).with_for_update()
            )).scalars())
            if not members:
                return changed
            changed += await settle(session, members, program, now)
        last = members[-1].member_id
