"""Use cases of the tiers service, one transaction each (the caller commits; these only flush).

A member's tier is evaluated (``domain.evaluate``) after each purchase fact, for every member when the
program changes, and by the hourly ``evaluate_all`` for members whose retention has ended.

Locks are always taken in one order: the program row first (shared by evaluations, exclusive for a program
change), then member rows in member_id order. So an evaluation never applies a ladder that a committed
change replaced, a member enrolled during a change is evaluated against the new ladder, and nothing
deadlocks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers import domain, schemas
from services.tiers.models import Base, Member, Purchase, Refund, Tier, TierHistory, TierProgram, outbox
from shared import events
from shared.db import Database, insert_ignoring_conflicts, utcnow
from shared.errors import InvalidRequest, MemberNotFound
from shared.outbox import Outbox
from shared.pagination import decode_cursor, encode_cursor

log = logging.getLogger(__name__)

SOURCE = "tiers"
OUTBOX = Outbox(outbox, SOURCE)
BATCH_SIZE = 500
CENT = Decimal("0.01")
PROGRAM_TABLE = Base.metadata.tables["tier_program"]


# --- program ---------------------------------------------------------------------------------------


async def load_program(session: AsyncSession) -> domain.Program:
    """The stored program, or the default one before the first PUT."""
    row = await session.get(TierProgram, 1)
    tiers = (await session.execute(
        select(Tier.tier_id, Tier.name, Tier.threshold, Tier.earn_multiplier, Tier.perks).order_by(Tier.position)
    )).all()
    if row is None or not tiers:
        return domain.DEFAULT_PROGRAM
    return domain.Program(
        basis=cast(domain.Basis, row.basis), window_days=row.window_days, retention_days=row.retention_days,
        downgrade=cast(domain.Downgrade, row.downgrade),
        tiers=tuple(domain.Tier(t.tier_id, t.threshold, t.earn_multiplier, t.name, tuple(t.perks)) for t in tiers),
    )


async def _program_for_evaluation(session: AsyncSession) -> domain.Program:
    """The program, its row share-locked (and created with the defaults if missing, so there is a row to
    lock) until the caller's transaction ends."""
    share = {"read": True, "key_share": True}
    if await session.get(TierProgram, 1, with_for_update=share) is None:
        default = domain.DEFAULT_PROGRAM
        await session.execute(insert_ignoring_conflicts(PROGRAM_TABLE, session.get_bind().dialect.name).values(
            id=1, basis=default.basis, window_days=default.window_days, retention_days=default.retention_days,
            downgrade=default.downgrade, updated_at=None, updated_by=None,
        ))
        await session.get(TierProgram, 1, with_for_update=share)
    return await load_program(session)


async def get_program(session: AsyncSession) -> schemas.TierProgram:
    return program_out(await load_program(session), await session.get(TierProgram, 1))


async def put_program(
    session: AsyncSession, body: schemas.TierProgramIn, actor: str, *, now: datetime | None = None
) -> schemas.TierProgram:
    """Replace the program and evaluate every known member against it at once: upgrades now, downgrades
    only where retention has ended, and members of a tier that is gone go to the tier their window supports.
    Members whose tier stays but whose multiplier or ladder changed get a ``tier.changed`` (from and to the
    same tier, no history row) so that points and rewards hold the new terms."""
    now = now or utcnow()
    program = domain.Program(
        basis=body.basis, window_days=body.window_days, retention_days=body.retention_days,
        downgrade=body.downgrade,
        tiers=tuple(domain.Tier(t.tier_id, t.threshold, t.earn_multiplier, t.name, tuple(t.perks))
                    for t in body.tiers),
    )
    problems = domain.ladder_problems(program.tiers, program.basis)
    if problems:
        errors = [{"loc": ["body", "tiers", index, field], "msg": msg} for index, field, msg in problems]
        index, field, msg = problems[0]
        raise InvalidRequest(f"body.tiers.{index}.{field}: {msg}", errors=errors)

    values = {"basis": program.basis, "window_days": program.window_days,
              "retention_days": program.retention_days, "downgrade": program.downgrade,
              "updated_at": now, "updated_by": actor}
    dialect = session.get_bind().dialect.name
    await session.execute(insert_ignoring_conflicts(PROGRAM_TABLE, dialect).values(id=1, **values))
    row = await session.get(TierProgram, 1, with_for_update=True)  # waits for evaluations and other changes
    assert row is not None
    previous = await load_program(session)
    for field, value in values.items():
        setattr(row, field, value)
    await session.execute(delete(Tier))
    await session.execute(insert(Tier), [
        {"tier_id": t.tier_id, "position": position, "name": t.name, "threshold": t.threshold,
         "earn_multiplier": t.earn_multiplier, "perks": list(t.perks)}
        for position, t in enumerate(program.tiers)
    ])
    await session.flush()

    last = ""
    while True:
        members = list((await session.execute(
            select(Member).where(Member.member_id > last).order_by(Member.member_id).limit(BATCH_SIZE)
            .with_for_update()
        )).scalars())
        if not members:
            break
        await _settle(session, members, program, now, previous=previous)
        last = members[-1].member_id
    return program_out(program, row)


def program_out(program: domain.Program, row: TierProgram | None) -> schemas.TierProgram:
    return schemas.TierProgram(
        basis=program.basis, window_days=program.window_days, retention_days=program.retention_days,
        downgrade=program.downgrade,
        tiers=[schemas.TierOut(tier_id=t.tier_id, name=t.name, threshold=_plain(t.threshold),
                               earn_multiplier=_plain(t.earn_multiplier), perks=list(t.perks))
               for t in program.tiers],
        updated_at=row.updated_at if row else None, updated_by=row.updated_by if row else None,
    )


# --- members ---------------------------------------------------------------------------------------


async def member_tier(session: AsyncSession, member_id: str, *, now: datetime | None = None) -> schemas.MemberTier:
    """The member's tier and progress; the qualifying value is summed now, so purchases that left the
    window no longer count even before the next evaluation."""
    now = now or utcnow()
    member = await _get_member(session, member_id)
    program = await load_program(session)
    window_start = program.window_start(now)
    facts = await _facts(session, [member_id], window_start)
    value = domain.qualifying_value(facts.get(member_id, ()), program.basis, window_start)
    rank = program.rank_of(member.tier_id)
    tier = program.tiers[rank] if rank is not None else None
    above = domain.next_tier(program.tiers, member.tier_id)
    return schemas.MemberTier(
        member_id=member.member_id, tier_id=member.tier_id, name=tier.name if tier else member.tier_id,
        since=member.tier_since, retained_until=member.retained_until,
        qualifying_value=_amount(value, program.basis), window_start=window_start,
        next_tier=schemas.NextTier(
            tier_id=above.tier_id, threshold=_amount(above.threshold, program.basis),
            remaining=_amount(max(above.threshold - value, Decimal(0)), program.basis),
        ) if above else None,
        earn_multiplier=_plain(tier.earn_multiplier) if tier else "1",
    )


async def history_page(
    session: AsyncSession, member_id: str, limit: int, cursor: str | None
) -> tuple[list[schemas.HistoryEntry], str | None]:
    """Newest first, keyset on entry_id so a page costs the same however long the history is."""
    await _get_member(session, member_id)
    query = select(TierHistory).where(TierHistory.member_id == member_id)
    if cursor:
        (before,) = decode_cursor(cursor, 1)
        if not isinstance(before, int):
            raise InvalidRequest("cursor: not a cursor this service gave out")
        query = query.where(TierHistory.entry_id < before)
    rows = list((await session.execute(query.order_by(TierHistory.entry_id.desc()).limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [schemas.HistoryEntry(from_tier=r.from_tier, to_tier=r.to_tier, reason=r.reason, at=r.at) for r in rows]
    return items, encode_cursor([rows[-1].entry_id]) if more else None


async def _get_member(session: AsyncSession, member_id: str) -> Member:
    member = await session.get(Member, member_id)
    if member is None:
        raise MemberNotFound(f"No member '{member_id}' is known to tiers; members appear with their enrolment "
                             "or their first purchase.")
    return member


# --- events from points ----------------------------------------------------------------------------


async def record_member(session: AsyncSession, data: events.MemberEnrolled, *, now: datetime | None = None) -> None:
    """``member.enrolled`` / ``member.updated``: a member not known yet starts at the lowest tier."""
    now = now or utcnow()
    member = await _known_member(session, data.member_id, await _program_for_evaluation(session), now)
    member.status = data.status
    member.enrolled_at = data.enrolled_at
    member.updated_at = now
    await session.flush()


async def record_purchase(
    session: AsyncSession, data: events.PurchaseRecorded, *, now: datetime | None = None
) -> None:
    """Store the purchase's facts (once per purchase_id, however often it is told) and evaluate."""
    now = now or utcnow()
    program = await _program_for_evaluation(session)
    member = await _known_member(session, data.member_id, program, now)
    purchase = await session.get(Purchase, data.purchase_id)
    if purchase is None:
        purchase = Purchase(purchase_id=data.purchase_id, member_id=data.member_id)
        session.add(purchase)
    elif purchase.member_id != data.member_id:
        log.warning("purchase %s is already %s's; ignored for %s", data.purchase_id, purchase.member_id,
                    data.member_id)
        return
    purchase.occurred_at = data.occurred_at
    purchase.currency = data.currency
    purchase.total = data.total
    purchase.points_earned = data.points_earned
    await _sync_refunds(session, purchase)  # a points.reversed may have come first
    await _settle(session, [member], program, now)


async def record_refund(session: AsyncSession, data: events.PurchaseRefunded, *, now: datetime | None = None) -> None:
    """Store the refund's facts (once per refund_id) and lower its purchase's value."""
    now = now or utcnow()
    program = await _program_for_evaluation(session)
    member = await _known_member(session, data.member_id, program, now)
    refund = await _refund(session, data.refund_id, data.purchase_id, data.member_id)
    refund.amount = data.amount
    refund.points_reversed = data.points_reversed
    refund.occurred_at = data.occurred_at
    purchase = await session.get(Purchase, data.purchase_id)
    if purchase is not None and purchase.member_id == data.member_id:
        await _sync_refunds(session, purchase)
    await _settle(session, [member], program, now)


async def record_points_earned(
    session: AsyncSession, data: events.PointsEarned, *, now: datetime | None = None
) -> None:
    """Confirm a purchase's points. Only the buyer's own purchase counts: a referral bonus names the
    referred member's purchase, and points not tied to a purchase (enrolment, referral) do not qualify.
    When the purchase is not known yet its ``purchase.recorded`` brings the same figure."""
    if data.purchase_id is None:
        return
    now = now or utcnow()
    program = await _program_for_evaluation(session)
    member = await session.get(Member, data.member_id, with_for_update=True)
    purchase = await session.get(Purchase, data.purchase_id)
    if member is None or purchase is None or purchase.member_id != data.member_id:
        return
    purchase.points_earned = data.points
    await _settle(session, [member], program, now)


async def record_points_reversed(
    session: AsyncSession, data: events.PointsReversed, *, now: datetime | None = None
) -> None:
    """Store the points a refund took back; they count once the purchase is known."""
    now = now or utcnow()
    program = await _program_for_evaluation(session)
    member = await session.get(Member, data.member_id, with_for_update=True)
    refund = await _refund(session, data.refund_id, data.purchase_id, data.member_id)
    refund.points_reversed = data.points
    purchase = await session.get(Purchase, data.purchase_id)
    if member is None or purchase is None or purchase.member_id != data.member_id:
        await session.flush()
        return
    await _sync_refunds(session, purchase)
    await _settle(session, [member], program, now)


# --- the hourly job --------------------------------------------------------------------------------


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
            program = await _program_for_evaluation(session)
            members = list((await session.execute(
                select(Member).where(Member.retained_until <= now, Member.member_id > last)
                .order_by(Member.member_id).limit(batch_size).with_for_update()
            )).scalars())
            if not members:
                return changed
            changed += await _settle(session, members, program, now)
        last = members[-1].member_id


# --- evaluation ------------------------------------------------------------------------------------


async def _known_member(session: AsyncSession, member_id: str, program: domain.Program, now: datetime) -> Member:
    """The member's row, locked; a member seen for the first time is placed at the lowest tier (no facts
    can exist for them yet, so the value is 0)."""
    member = await session.get(Member, member_id, with_for_update=True)
    if member is not None:
        return member
    decision = domain.evaluate(None, Decimal(0), program.tiers, program.policy, now)
    member = Member(member_id=member_id, first_seen_at=now, tier_id=decision.tier_id, tier_since=decision.since,
                    retained_until=decision.retained_until, updated_at=now)
    session.add(member)
    await session.flush()
    await _record_change(session, member_id, None, decision, program, now)
    return member


async def _settle(
    session: AsyncSession, members: Sequence[Member], program: domain.Program, now: datetime,
    *, previous: domain.Program | None = None,
) -> int:
    """Evaluate locked members against ``program`` and apply the decisions; returns how many changed tier.
    ``previous`` is the program being replaced, if any, to tell members about new terms of their tier."""
    window_start = program.window_start(now)
    facts = await _facts(session, [m.member_id for m in members], window_start)
    changed = 0
    for member in members:
        value = domain.qualifying_value(facts.get(member.member_id, ()), program.basis, window_start)
        standing = domain.Standing(member.tier_id, member.tier_since, member.retained_until)
        decision = domain.evaluate(standing, value, program.tiers, program.policy, now)
        if decision.reason is not None:
            await _record_change(session, member.member_id, member.tier_id, decision, program, now)
            changed += 1
        elif previous is not None and _terms_changed(previous, program, member.tier_id):
            await OUTBOX.add(session, _tier_changed(member.member_id, member.tier_id, decision, program,
                                                    domain.TIERS_CHANGED, now))
        if decision.standing != standing:
            member.tier_id = decision.tier_id
            member.tier_since = decision.since
            member.retained_until = decision.retained_until
            member.updated_at = now
    await session.flush()
    return changed


def _terms_changed(previous: domain.Program, program: domain.Program, tier_id: str) -> bool:
    before = previous.rank_of(tier_id)
    after = program.rank_of(tier_id)
    if before is None or after is None:
        return True
    return (previous.ladder != program.ladder
            or previous.tiers[before].earn_multiplier != program.tiers[after].earn_multiplier)


async def _record_change(
    session: AsyncSession, member_id: str, from_tier: str | None, decision: domain.Decision,
    program: domain.Program, now: datetime,
) -> None:
    assert decision.reason is not None
    session.add(TierHistory(member_id=member_id, from_tier=from_tier, to_tier=decision.tier_id,
                            reason=decision.reason, at=now))
    await OUTBOX.add(session, _tier_changed(member_id, from_tier, decision, program, decision.reason, now))


def _tier_changed(
    member_id: str, from_tier: str | None, decision: domain.Decision, program: domain.Program, reason: str,
    now: datetime,
) -> events.TierChanged:
    tier = program.tiers[decision.rank]
    return events.TierChanged(
        member_id=member_id, from_tier=from_tier, to_tier=tier.tier_id, rank=decision.rank, ladder=program.ladder,
        earn_multiplier=Decimal(_plain(tier.earn_multiplier)), reason=reason, at=now,
    )


async def _facts(
    session: AsyncSession, member_ids: list[str], window_start: datetime
) -> dict[str, list[domain.PurchaseFacts]]:
    rows = (await session.execute(
        select(Purchase.member_id, Purchase.occurred_at, Purchase.total, Purchase.refunded,
               Purchase.points_earned, Purchase.points_reversed)
        .where(Purchase.member_id.in_(member_ids), Purchase.occurred_at >= window_start)
    )).all()
    facts: dict[str, list[domain.PurchaseFacts]] = {}
    for row in rows:
        facts.setdefault(row.member_id, []).append(domain.PurchaseFacts(
            occurred_at=row.occurred_at, total=row.total, refunded=row.refunded, points=row.points_earned,
            points_reversed=row.points_reversed,
        ))
    return facts


async def _refund(session: AsyncSession, refund_id: str, purchase_id: str, member_id: str) -> Refund:
    refund = await session.get(Refund, refund_id)
    if refund is None:
        refund = Refund(refund_id=refund_id, purchase_id=purchase_id, member_id=member_id, amount=Decimal(0),
                        points_reversed=0)
        session.add(refund)
    return refund


async def _sync_refunds(session: AsyncSession, purchase: Purchase) -> None:
    """A purchase's refunded amount and reversed points are the sums of its refunds' facts."""
    amount, points = (await session.execute(
        select(func.coalesce(func.sum(Refund.amount), 0), func.coalesce(func.sum(Refund.points_reversed), 0))
        .where(Refund.purchase_id == purchase.purchase_id)
    )).one()
    purchase.refunded = amount
    purchase.points_reversed = int(points)


# --- formats ---------------------------------------------------------------------------------------


def _plain(value: Decimal) -> str:
    """``500.0000`` as ``500``, ``1.5000`` as ``1.5``: the figure as an operator would write it."""
    return format(value.normalize(), "f")


def _amount(value: Decimal, basis: domain.Basis) -> str:
    """Points as a whole number; spend as money, with at least two decimals (``120.00``, ``12.345``)."""
    if basis == "points":
        return str(int(value))
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        return format(value.quantize(CENT), "f")
    return format(normal, "f")
