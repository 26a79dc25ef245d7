"""Use cases of the points service, one transaction each (the caller commits; these only flush)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain, schemas
from services.points.models import (
    LedgerEntry,
    Lot,
    Member,
    Program,
    Purchase,
    RedemptionDebit,
    idempotency,
    outbox,
)
from shared import events
from shared.db import utcnow
from shared.errors import CurrencyMismatch, MemberInactive, MemberNotFound
from shared.idempotency import IdempotencyKeys, request_hash
from shared.outbox import Outbox

SOURCE = "points"
OUTBOX = Outbox(outbox, SOURCE)
IDEMPOTENCY = IdempotencyKeys(idempotency)
EXPIRING_WINDOW = timedelta(days=30)

DEFAULT_PROGRAM = {
    "currency": "USD", "points_per_unit": Decimal(1), "expiry_days": 365, "pending_days": 0,
    "excluded_categories": [],
}


# --- program ---------------------------------------------------------------------------------------


async def get_program(session: AsyncSession) -> Program:
    program = await session.get(Program, 1)
    if program is None:
        program = Program(id=1, updated_at=utcnow(), **DEFAULT_PROGRAM)
        session.add(program)
        await session.flush()
    return program


async def put_program(session: AsyncSession, body: schemas.ProgramIn) -> Program:
    program = await get_program(session)
    for field, value in body.model_dump().items():
        setattr(program, field, value)
    program.updated_at = utcnow()
    await session.flush()
    return program


# --- members ---------------------------------------------------------------------------------------


def member_out(member: Member) -> schemas.Member:
    return schemas.Member(
        member_id=member.member_id, name=member.name, email=member.email, phone=member.phone,
        birth_date=member.birth_date, referred_by=member.referred_by, status=member.status,  # type: ignore[arg-type]
        enrolled_at=member.enrolled_at, tier=member.tier_id,
    )


def _member_event(member: Member, cls: type[events.MemberEnrolled]) -> events.MemberEnrolled:
    return cls(
        member_id=member.member_id, status=member.status,  # type: ignore[arg-type]
        enrolled_at=member.enrolled_at, birth_month=member.birth_date.month if member.birth_date else None,
        referred_by=member.referred_by,
    )


async def upsert_member(session: AsyncSession, member_id: str, body: schemas.MemberIn) -> tuple[Member, bool]:
    """Enroll a member, or update the fields given; returns (member, created)."""
    member = await session.get(Member, member_id, with_for_update=True)
    now = utcnow()
    if member is None:
        member = Member(
            member_id=member_id, status="active", enrolled_at=now, updated_at=now,
            earn_multiplier=Decimal(1), available=0, pending=0, lifetime_earned=0, lifetime_spent=0,
            **body.model_dump(),
        )
        session.add(member)
        await session.flush()
        await OUTBOX.add(session, _member_event(member, events.MemberEnrolled))
        return member, True
    changes = body.model_dump(exclude_unset=True)
    changed = {k: v for k, v in changes.items() if getattr(member, k) != v}
    if changed:
        for field, value in changed.items():
            setattr(member, field, value)
        member.updated_at = now
        await session.flush()
        await OUTBOX.add(session, _member_event(member, events.MemberUpdated))
    return member, False


async def get_member(session: AsyncSession, member_id: str, *, for_update: bool = False) -> Member:
    member = await session.get(Member, member_id, with_for_update=for_update)
    if member is None:
        raise MemberNotFound(f"No member '{member_id}'; enroll it with PUT /v1/members/{member_id}.")
    return member


async def balance_of(session: AsyncSession, member_id: str) -> schemas.Balance:
    member = await get_member(session, member_id)
    now = utcnow()
    rows = (await session.execute(
        select(Lot.expires_at, Lot.remaining)
        .where(Lot.member_id == member_id, Lot.remaining > 0, Lot.expires_at <= now + EXPIRING_WINDOW)
        .order_by(Lot.expires_at)
    )).all()
    expiring: dict[datetime, int] = {}
    for expires_at, remaining in rows:
        expiring[expires_at] = expiring.get(expires_at, 0) + remaining
    return schemas.Balance(
        member_id=member.member_id, available=member.available, pending=member.pending,
        lifetime_earned=member.lifetime_earned, lifetime_spent=member.lifetime_spent,
        expiring=[schemas.Expiring(points=p, expires_at=t) for t, p in expiring.items()],
        tier=member.tier_id, as_of=now,
    )


# --- ledger primitives -----------------------------------------------------------------------------


async def _append_entry(session: AsyncSession, member: Member, kind: str, points: int, **refs: Any) -> LedgerEntry:
    entry = LedgerEntry(
        member_id=member.member_id, kind=kind, points=points, balance_after=member.available,
        occurred_at=utcnow(), **refs,
    )
    session.add(entry)
    await session.flush()
    return entry


async def _credit(
    session: AsyncSession, member: Member, program: Program, kind: str, points: int, **refs: Any
) -> LedgerEntry:
    """Credit points as a new lot expiring ``expiry_days`` from now."""
    now = utcnow()
    member.available += points
    member.lifetime_earned += points
    entry = await _append_entry(session, member, kind, points, **refs)
    if points > 0:
        session.add(Lot(
            member_id=member.member_id, entry_id=entry.entry_id, points=points, remaining=points, earned_at=now,
            expires_at=now + timedelta(days=program.expiry_days), available_at=now,
        ))
    return entry


async def _debit(session: AsyncSession, member: Member, kind: str, points: int, **refs: Any) -> LedgerEntry:
    """Take points from the soonest-expiring lots (the caller has checked the balance covers them)."""
    lots = (await session.execute(
        select(Lot).where(Lot.member_id == member.member_id, Lot.remaining > 0)
        .order_by(Lot.expires_at, Lot.lot_id).with_for_update()
    )).scalars().all()
    by_id = {lot.lot_id: lot for lot in lots}
    states = [domain.LotState(lot.lot_id, lot.remaining, lot.expires_at) for lot in lots]
    for lot_id, taken in domain.take_from_lots(states, points):
        by_id[lot_id].remaining -= taken
    member.available -= points
    if kind == "spend":
        member.lifetime_spent += points
    return await _append_entry(session, member, kind, -points, **refs)


def _snapshot(member: Member) -> events.BalanceSnapshot:
    return events.BalanceSnapshot(available=member.available, pending=member.pending)


# --- purchases -------------------------------------------------------------------------------------


async def record_purchase(session: AsyncSession, body: schemas.PurchaseIn) -> tuple[dict[str, Any], bool]:
    """Store a purchase and credit its points; returns (answer, created). A retry replays the answer."""
    replay = await IDEMPOTENCY.claim(session, "purchase", body.purchase_id, request_hash(body))
    if replay is not None:
        return replay, False
    program = await get_program(session)
    if body.currency != program.currency:
        raise CurrencyMismatch(f"The program runs in {program.currency}; this purchase is in {body.currency}.")
    member = await get_member(session, body.member_id, for_update=True)
    if member.status != "active":
        raise MemberInactive(f"Member '{member.member_id}' is {member.status} and earns no points.")

    lines = (
        [domain.Line(line.unit_price * line.quantity, line.category, line.sku) for line in body.lines]
        if body.lines else [domain.Line(body.total)]
    )
    earning = domain.compute_earning(
        lines, points_per_unit=program.points_per_unit,
        excluded_categories=set(program.excluded_categories), tier_multiplier=member.earn_multiplier,
    )
    session.add(Purchase(
        purchase_id=body.purchase_id, member_id=member.member_id, store_id=body.store_id, channel=body.channel,
        occurred_at=body.occurred_at, currency=body.currency, total=body.total, refunded_amount=Decimal(0),
        points_earned=earning.points, recorded_at=utcnow(),
        lines=[line.model_dump(mode="json") for line in body.lines] if body.lines else None,
    ))
    await _credit(session, member, program, "earn", earning.points, purchase_id=body.purchase_id,
                  rule_ids=earning.rule_ids or None)
    await OUTBOX.add(
        session,
        events.PurchaseRecorded(
            member_id=member.member_id, purchase_id=body.purchase_id, store_id=body.store_id,
            channel=body.channel, occurred_at=body.occurred_at, currency=body.currency, total=body.total,
            points_earned=earning.points,
        ),
        events.PointsEarned(
            member_id=member.member_id, purchase_id=body.purchase_id, points=earning.points,
            balance=_snapshot(member), occurred_at=body.occurred_at,
        ),
    )
    answer = schemas.PurchaseResult(
        purchase_id=body.purchase_id, member_id=member.member_id, points_earned=earning.points,
        status="credited", breakdown=[schemas.BreakdownItem(rule_id=r, points=p) for r, p in earning.breakdown],
        balance=schemas.BalanceShort(available=member.available, pending=member.pending),
    ).model_dump(mode="json")
    await IDEMPOTENCY.complete(session, "purchase", body.purchase_id, 201, answer)
    return answer, True


# --- events from other services --------------------------------------------------------------------


async def apply_tier_change(session: AsyncSession, data: events.TierChanged) -> None:
    """Remember the member's tier so that later purchases earn with its multiplier."""
    await session.execute(
        update(Member).where(Member.member_id == data.member_id)
        .values(tier_id=data.to_tier, earn_multiplier=data.earn_multiplier)
    )


async def pay_redemption(session: AsyncSession, data: events.RedemptionRequested) -> None:
    """Debit a redemption's points or decline it. Asked again, answer the same way without paying twice."""
    seen = await session.get(RedemptionDebit, data.redemption_id)
    if seen is not None:
        member = await session.get(Member, seen.member_id)
        await OUTBOX.add(session, _redemption_answer(seen, member))
        return
    member = await session.get(Member, data.member_id, with_for_update=True)
    reason = None
    if member is None:
        reason = "member-not-found"
    elif member.status != "active":
        reason = "member-inactive"
    elif member.available < data.points_cost:
        reason = "insufficient-points"
    debit = RedemptionDebit(
        redemption_id=data.redemption_id, member_id=data.member_id, points=data.points_cost,
        outcome="declined" if reason else "spent", reason=reason, refunded=False, decided_at=utcnow(),
    )
    session.add(debit)
    if member is not None and reason is None:
        await _debit(session, member, "spend", data.points_cost, redemption_id=data.redemption_id)
    await session.flush()
    await OUTBOX.add(session, _redemption_answer(debit, member))


def _redemption_answer(debit: RedemptionDebit, member: Member | None) -> events.EventData:
    if debit.outcome == "spent":
        assert member is not None
        return events.PointsSpent(member_id=debit.member_id, redemption_id=debit.redemption_id,
                                  points=debit.points, balance=_snapshot(member))
    return events.PointsSpendDeclined(member_id=debit.member_id, redemption_id=debit.redemption_id,
                                      points=debit.points, reason=debit.reason)  # type: ignore[arg-type]
