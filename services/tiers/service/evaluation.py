"""Settling locked members against the program: the one place a member's stored tier moves one at a time
(after a refund, a points figure, a program change, the hourly evaluation), with its history row and its
``tier.changed``. A batch of purchases moves tiers by the same rules in memory (``purchases``) and announces
them with ``tier_changed`` from here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers.domain import tiers
from services.tiers.models import Member, Purchase, TierHistory
from services.tiers.service import OUTBOX
from services.tiers.service.formats import plain
from shared.messaging import events


async def known_member(session: AsyncSession, member_id: str, program: tiers.Program, now: datetime) -> Member:
    """The member's row, locked; see ``known_members``."""
    return (await known_members(session, [member_id], program, now))[member_id]


async def known_members(
    session: AsyncSession, member_ids: Sequence[str], program: tiers.Program, now: datetime
) -> dict[str, Member]:
    """The members' rows, locked (in id order, so that two transactions never wait for each other in a
    circle); a member seen for the first time is placed at the lowest tier (no facts can exist for them
    yet, so the value is 0)."""
    members = {m.member_id: m for m in (await session.execute(
        select(Member).where(Member.member_id.in_(member_ids)).order_by(Member.member_id).with_for_update()
    )).scalars()}
    new = [member_id for member_id in member_ids if member_id not in members]
    if not new:
        return members
    decision = tiers.evaluate(None, Decimal(0), program.tiers, program.policy, now)
    for member_id in new:
        members[member_id] = Member(member_id=member_id, first_seen_at=now, tier_id=decision.tier_id,
                                    tier_since=decision.since, retained_until=decision.retained_until,
                                    updated_at=now)
        session.add(members[member_id])
    await session.flush()
    await OUTBOX.add(session, *(_record_change(session, member_id, None, decision, program, now) for member_id in new))
    return members


async def settle(
    session: AsyncSession, members: Sequence[Member], program: tiers.Program, now: datetime,
    *, previous: tiers.Program | None = None,
) -> int:
    """Evaluate locked members against ``program`` and apply the decisions; returns how many changed tier.
    ``previous`` is the program being replaced, if any, to tell members about new terms of their tier."""
    window_start = program.window_start(now)
    facts = await window_facts(session, [m.member_id for m in members], window_start)
    changed = 0
    announcements = []
    for member in members:
        value = tiers.qualifying_value(facts.get(member.member_id, ()), program.basis, window_start)
        standing = tiers.Standing(member.tier_id, member.tier_since, member.retained_until)
        decision = tiers.evaluate(standing, value, program.tiers, program.policy, now)
        if decision.reason is not None:
            announcements.append(_record_change(session, member.member_id, member.tier_id, decision, program, now))
            changed += 1
        elif previous is not None and _terms_changed(previous, program, member.tier_id):
            announcements.append(tier_changed(member.member_id, member.tier_id, decision, program,
                                              tiers.TIERS_CHANGED, now))
        if decision.standing != standing:
            member.tier_id = decision.tier_id
            member.tier_since = decision.since
            member.retained_until = decision.retained_until
            member.updated_at = now
    await OUTBOX.add(session, *announcements)
    await session.flush()
    return changed


def _terms_changed(previous: tiers.Program, program: tiers.Program, tier_id: str) -> bool:
    before = previous.rank_of(tier_id)
    after = program.rank_of(tier_id)
    if before is None or after is None:
        return True
    return (previous.ladder != program.ladder
            or previous.tiers[before].earn_multiplier != program.tiers[after].earn_multiplier)


def _record_change(
    session: AsyncSession, member_id: str, from_tier: str | None, decision: tiers.Decision,
    program: tiers.Program, now: datetime,
) -> events.TierChanged:
    """The history row of a change of tier (staged in the session) and its announcement, for the caller to
    add to the outbox with the others of its batch."""
    assert decision.reason is not None
    session.add(TierHistory(member_id=member_id, from_tier=from_tier, to_tier=decision.tier_id,
                            reason=decision.reason, at=now))
    return tier_changed(member_id, from_tier, decision, program, decision.reason, now)


def tier_changed(
    member_id: str, from_tier: str | None, decision: tiers.Decision, program: tiers.Program, reason: str,
    now: datetime,
) -> events.TierChanged:
    """The announcement of a member's tier: the new ladder and multiplier travel with it, so that points
    and rewards hold the terms without asking."""
    tier = program.tiers[decision.rank]
    return events.TierChanged(
        member_id=member_id, from_tier=from_tier, to_tier=tier.tier_id, rank=decision.rank, ladder=program.ladder,
        earn_multiplier=Decimal(plain(tier.earn_multiplier)), reason=reason, at=now,
    )


async def window_facts(
    session: AsyncSession, member_ids: list[str], window_start: datetime
) -> dict[str, list[tiers.PurchaseFacts]]:
    """The facts of each member's purchases from ``window_start`` on (later ones too: a till's clock may run
    ahead), for ``tiers.qualifying_value``."""
    rows = (await session.execute(
        select(Purchase.member_id, Purchase.occurred_at, Purchase.total, Purchase.refunded,
               Purchase.points_earned, Purchase.points_reversed)
        .where(Purchase.member_id.in_(member_ids), Purchase.occurred_at >= window_start)
    )).all()
    facts: dict[str, list[tiers.PurchaseFacts]] = {}
    for row in rows:
        facts.setdefault(row.member_id, []).append(tiers.PurchaseFacts(
            occurred_at=row.occurred_at, total=row.total, refunded=row.refunded, points=row.points_earned,
            points_reversed=row.points_reversed,
        ))
    return facts
