"""Use cases of the points service, one transaction each (the caller commits; these only flush).

Every use case that moves points locks the member row first, then settles it (pending points that matured,
lots that expired), so what it decides on is the balance as of now.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Insert, Row, Select, Table, Update, and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain, ledger, rules, schemas
from services.points.errors import (
    CurrencyMismatch,
    InsufficientPoints,
    MemberInactive,
    MemberNotFound,
    RefundExceedsPurchase,
)
from services.points.models import (
    Base,
    LedgerEntry,
    Lot,
    Member,
    Program,
    Purchase,
    RedemptionDebit,
    Refund,
    idempotency,
    outbox,
)
from shared.clock import utcnow
from shared.db.database import Database
from shared.db.driver import DriverStatement, WritesTogether
from shared.db.statements import insert_ignoring_conflicts, next_id
from shared.db.types import UTCDateTime
from shared.errors import InvalidRequest, NotFound
from shared.http.idempotency import IdempotencyKeys, request_hash
from shared.http.pagination import decode_cursor, encode_cursor
from shared.messaging import events
from shared.messaging.outbox import Outbox

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
        # The first requests of a new database may all find no row: one insert wins, the others wait for it
        # and do nothing, and every one reads the winner's row (never a 500 for the duplicate key).
        program_table = Program.metadata.tables[Program.__tablename__]
        await session.execute(insert_ignoring_conflicts(program_table, session.get_bind().dialect.name).values(
            id=1, updated_at=utcnow(), rules_version=rules.new_version(), **DEFAULT_PROGRAM))
        program = await session.get(Program, 1)
        assert program is not None
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
        birth_date=member.birth_date, referred_by=member.referred_by, status=member.status,
        enrolled_at=member.enrolled_at, tier=member.tier_id,
    )


def _member_event(member: Member, cls: type[events.MemberEnrolled]) -> events.MemberEnrolled:
    return cls(
        member_id=member.member_id, status=member.status,
        enrolled_at=member.enrolled_at, birth_month=member.birth_date.month if member.birth_date else None,
        referred_by=member.referred_by,
    )


def _snapshot(member: Member) -> events.BalanceSnapshot:
    return events.BalanceSnapshot(available=member.available, pending=member.pending)


async def upsert_member(session: AsyncSession, member_id: str, body: schemas.MemberIn) -> tuple[Member, bool]:
    """Enroll a member (with any enrollment bonus), or update the fields given; returns (member, created)."""
    member = await session.get(Member, member_id, with_for_update=True)
    now = utcnow()
    if member is None:
        fields = body.model_dump(exclude={"status"})
        member = Member(
            member_id=member_id, status=body.status or "active", enrolled_at=now, updated_at=now,
            earn_multiplier=Decimal(1), available=0, pending=0, lifetime_earned=0, lifetime_spent=0,
            purchase_count=0, **fields,
        )
        session.add(member)
        await session.flush()
        await OUTBOX.add(session, _member_event(member, events.MemberEnrolled))
        await _enrollment_bonus(session, member)
        return member, True
    changes = body.model_dump(exclude_unset=True)
    changed = {k: v for k, v in changes.items() if v is not None and getattr(member, k) != v}
    if changed:
        for field, value in changed.items():
            setattr(member, field, value)
        member.updated_at = now
        await session.flush()
        await OUTBOX.add(session, _member_event(member, events.MemberUpdated))
    return member, False


async def _enrollment_bonus(session: AsyncSession, member: Member) -> None:
    program = await get_program(session)
    _, bonuses = await rules.active_rules(session, program.rules_version)
    for bonus in sorted(bonuses, key=lambda b: b.rule_id):
        if bonus.trigger == "enrollment" and bonus.window.contains(member.enrolled_at):
            await _bonus(session, member, program.expiry_days, bonus)


async def _bonus(session: AsyncSession, member: Member, expiry_days: int, bonus: domain.BonusRule,
                 **refs: Any) -> None:
    now = utcnow()
    await ledger.credit(session, member, "bonus", bonus.points, rule_ids=[bonus.rule_id],
                        expires_at=ledger.expiry_for(now, expiry_days), **refs)
    await OUTBOX.add(session, events.PointsEarned(
        member_id=member.member_id, points=bonus.points, balance=_snapshot(member), occurred_at=now,
        purchase_id=refs.get("purchase_id"), kind="bonus", rule_ids=[bonus.rule_id],
    ))


async def get_member(session: AsyncSession, member_id: str, *, for_update: bool = False) -> Member:
    member = await session.get(Member, member_id, with_for_update=for_update)
    if member is None:
        raise MemberNotFound(f"No member '{member_id}'; enroll it with PUT /v1/members/{member_id}.")
    return member


async def _locked_member(session: AsyncSession, member_id: str) -> Member:
    """The member row locked and settled as of now (with a points.expired event if lots expired)."""
    member = await get_member(session, member_id, for_update=True)
    await _settle(session, member)
    return member


async def _settle(session: AsyncSession, member: Member) -> None:
    expired = await ledger.settle(session, member)
    if expired:
        await OUTBOX.add(session, events.PointsExpired(member_id=member.member_id, points=expired,
                                                       balance=_snapshot(member)))


def _lots_to_show_clause(now: Any, window_end: Any) -> Any:
    """The member's lots a balance shows (expiring by ``window_end``) or must settle first (due at ``now``)."""
    return or_(and_(Lot.remaining > 0, Lot.expires_at <= window_end), ledger.due_lots_clause(now))


def _balance_query() -> Select[Any]:
    """Built once, with bind parameters: building the expression costs more than running it."""
    member, lot = Member.__table__, Lot.__table__
    shown = and_(lot.c.member_id == member.c.member_id,
                 _lots_to_show_clause(bindparam("now", type_=UTCDateTime), bindparam("window_end", type_=UTCDateTime)))
    return (
        select(member.c.available, member.c.pending.label("member_pending"), member.c.lifetime_earned,
               member.c.lifetime_spent, member.c.tier_id,
               lot.c.expires_at, lot.c.remaining, lot.c.pending, lot.c.available_at)
        .select_from(member.outerjoin(lot, shown))
        .where(member.c.member_id == bindparam("member_id"))
    )


_BALANCE = DriverStatement(_balance_query())


async def balance(db: Database, member_id: str) -> schemas.Balance:
    """The member's figures and the lots a balance shows, read in one statement outside any transaction
    (it is its own snapshot). When a lot is due (matured or expired) the balance is read again in a
    transaction that settles it first, which only happens when such a lot exists."""
    now = utcnow()
    rows: Sequence[Any] = await _BALANCE.read(db.engine, {"member_id": member_id, "now": now,
                                                    "window_end": now + EXPIRING_WINDOW})
    if not rows:
        raise MemberNotFound(f"No member '{member_id}'; enroll it with PUT /v1/members/{member_id}.")
    lots = [row for row in rows if row.expires_at is not None]
    if any(ledger.is_due(lot, now) for lot in lots):
        async with db.transaction() as session:
            return await _settled_balance(session, member_id)
    first = rows[0]
    return _balance_out(member_id, first.available, first.member_pending, first.lifetime_earned,
                        first.lifetime_spent, first.tier_id, lots, now)


async def _settled_balance(session: AsyncSession, member_id: str) -> schemas.Balance:
    """``balance`` in the caller's transaction, the member's due lots settled first."""
    member = await _locked_member(session, member_id)
    now = utcnow()
    lots = await _lots_to_show(session, member_id, now)
    return _balance_out(member_id, member.available, member.pending, member.lifetime_earned,
                        member.lifetime_spent, member.tier_id, lots, now)


def _balance_out(member_id: str, available: int, pending: int, lifetime_earned: int, lifetime_spent: int,
                 tier: str | None, lots: Sequence[Any], now: datetime) -> schemas.Balance:
    expiring: dict[datetime, int] = {}
    for lot in lots:
        if lot.remaining > 0 and lot.expires_at <= now + EXPIRING_WINDOW:
            expiring[lot.expires_at] = expiring.get(lot.expires_at, 0) + lot.remaining
    return schemas.Balance(
        member_id=member_id, available=available, pending=pending, lifetime_earned=lifetime_earned,
        lifetime_spent=lifetime_spent,
        expiring=[schemas.Expiring(points=p, expires_at=t) for t, p in sorted(expiring.items())],
        tier=tier, as_of=now,
    )


async def _lots_to_show(
    session: AsyncSession, member_id: str, now: datetime
) -> Sequence[Row[datetime, int, bool, datetime]]:
    return (await session.execute(
        select(Lot.expires_at, Lot.remaining, Lot.pending, Lot.available_at)
        .where(Lot.member_id == member_id, _lots_to_show_clause(now, now + EXPIRING_WINDOW))
    )).all()


def _table(model: type[Base]) -> Table:
    return model.metadata.tables[model.__tablename__]


def _ledger_page_query(after_cursor: bool) -> DriverStatement:
    entry = _table(LedgerEntry)
    query = select(entry).where(entry.c.member_id == bindparam("member_id"))
    if after_cursor:
        query = query.where(entry.c.entry_id < bindparam("before"))
    return DriverStatement(query.order_by(entry.c.entry_id.desc()).limit(bindparam("limit")))


_LEDGER_PAGE = {False: _ledger_page_query(after_cursor=False), True: _ledger_page_query(after_cursor=True)}


async def ledger_page(db: Database, member_id: str, limit: int, cursor: str | None
                      ) -> tuple[list[schemas.LedgerEntry], str | None]:
    """Newest first, keyset on entry_id so a page costs the same however long the ledger is. A page is one
    statement (its own snapshot); only an empty page asks whether the member exists."""
    params: dict[str, Any] = {"member_id": member_id, "limit": limit + 1}
    if cursor:
        (before,) = decode_cursor(cursor, 1)
        if not isinstance(before, int):
            raise InvalidRequest("cursor: not a cursor this service gave out")
        params["before"] = before
    rows = await _LEDGER_PAGE["before" in params].read(db.engine, params)
    if not rows:
        async with db.read() as session:
            await get_member(session, member_id)
    more = len(rows) > limit
    rows = rows[:limit]
    return [entry_out(e) for e in rows], encode_cursor([rows[-1].entry_id]) if more else None


def entry_out(entry: Any) -> schemas.LedgerEntry:
    """A ledger row (an entity or a row of its columns) as the API shows it."""
    return schemas.LedgerEntry(
        entry_id=entry.entry_id, kind=entry.kind, points=entry.points,
        balance_after=entry.balance_after, occurred_at=entry.occurred_at, purchase_id=entry.purchase_id,
        refund_id=entry.refund_id, redemption_id=entry.redemption_id, adjustment_id=entry.adjustment_id,
        transfer_id=entry.transfer_id, rule_ids=entry.rule_ids, actor=entry.actor, reason=entry.note,
    )


# --- purchases -------------------------------------------------------------------------------------


async def record_purchase(session: AsyncSession, body: schemas.PurchaseIn) -> tuple[dict[str, Any], bool]:
    """Store a purchase and credit its points; returns (answer, created). A retry replays the answer.

    The common case is three statements: the idempotency claim, one read (member locked, program, whether a
    lot is due, the ids of the new rows) and one write of every row (``WritesTogether``). A member with
    due lots is settled first, and a first purchase of a referred member pays the referral bonus, both as in
    the other use cases.
    """
    replay = await IDEMPOTENCY.claim(session, "purchase", body.purchase_id, request_hash(body))
    if replay is not None:
        return replay, False
    member = await _purchase_context(session, body)
    if member.due:
        await _locked_member(session, body.member_id)
        await session.flush()
        member = await _purchase_context(session, body)
    if member.status != "active":
        raise MemberInactive(f"Member '{body.member_id}' is {member.status} and earns no points.")

    multipliers, bonuses = await rules.active_rules(session, member.rules_version)
    facts = domain.PurchaseFacts(
        lines=tuple(domain.Line(line.unit_price * line.quantity, line.category, line.sku) for line in body.lines)
        if body.lines else (domain.Line(body.total),),
        occurred_at=body.occurred_at, store_id=body.store_id, channel=body.channel,
    )
    first_purchase = member.purchase_count == 0
    earning = domain.compute_earning(
        facts, points_per_unit=member.points_per_unit, excluded_categories=set(member.excluded_categories),
        multipliers=multipliers, bonuses=bonuses, tier_multiplier=member.earn_multiplier,
        member=domain.MemberFacts(first_purchase=first_purchase,
                                  birth_month=member.birth_date.month if member.birth_date else None,
                                  birthday_bonus_year=member.birthday_bonus_year),
    )
    answer = await _credit_purchase(session, body, member, earning)
    if first_purchase and member.referred_by:
        await _referral_bonus(session, body.member_id, member.referred_by, member.expiry_days, bonuses,
                              body.purchase_id)
    return answer, True


def _purchase_context_query(dialect: str) -> Select[Any]:
    member, program = Member.__table__, Program.__table__
    due = select(Lot.lot_id).where(Lot.member_id == bindparam("member_id"),
                                   ledger.due_lots_clause(bindparam("now", type_=UTCDateTime))).exists()
    return (
        select(member.c.status, member.c.available, member.c.pending, member.c.lifetime_earned,
               member.c.purchase_count, member.c.earn_multiplier, member.c.birth_date,
               member.c.birthday_bonus_year, member.c.referred_by,
               program.c.currency, program.c.points_per_unit, program.c.expiry_days, program.c.pending_days,
               program.c.excluded_categories, program.c.rules_version, due.label("due"),
               next_id(_table(LedgerEntry), "entry_id", dialect).label("entry_id"),
               next_id(_table(Lot), "lot_id", dialect).label("lot_id"))
        .select_from(member.join(program, program.c.id == 1))
        .where(member.c.member_id == bindparam("member_id"))
        .with_for_update(of=member)
    )


_PURCHASE_CONTEXT = {dialect: DriverStatement(_purchase_context_query(dialect)) for dialect in ("postgresql", "sqlite")}


async def _purchase_context(session: AsyncSession, body: schemas.PurchaseIn) -> Any:
    """The member row locked, the program, whether one of the member's lots is due, and the ids the
    purchase's ledger entry and lot will take, in one statement. Raises what a purchase that cannot be
    recorded gets (another currency, no such member)."""
    query = _PURCHASE_CONTEXT[(await session.connection()).dialect.name]
    params = {"member_id": body.member_id, "now": utcnow()}
    rows = await query.run_in(session, params)
    row = rows[0] if rows else None
    if row is None or row.currency != body.currency:
        # No such member, another currency, or a new database without its program row yet: the checks in
        # the order a purchase meets them, then (the program now exists) the read again.
        currency = (await get_program(session)).currency
        if body.currency != currency:
            raise CurrencyMismatch(f"The program runs in {currency}; this purchase is in {body.currency}.")
        await get_member(session, body.member_id)
        row = (await query.run_in(session, params))[0]
    return row


def _purchase_writes(with_lot: bool) -> WritesTogether:
    """Every row a purchase writes, as one statement on PostgreSQL; ``_credit_purchase`` gives the values."""
    p = WritesTogether.value
    member, entry, purchase, lot = _table(Member), _table(LedgerEntry), _table(Purchase), _table(Lot)
    statements: list[Insert | Update] = [
        update(member).where(member.c.member_id == p("member_id")).values(
            available=p("available"), pending=p("pending"), lifetime_earned=p("lifetime_earned"),
            purchase_count=p("purchase_count"), birthday_bonus_year=p("birthday_bonus_year")),
        insert(entry).values(
            entry_id=p("entry_id"), member_id=p("member_id"), kind="earn", points=p("points"),
            balance_after=p("balance_after"), occurred_at=p("now"), purchase_id=p("purchase_id"),
            rule_ids=p("rule_ids")),
        insert(purchase).values(
            purchase_id=p("purchase_id"), member_id=p("member_id"), store_id=p("store_id"), channel=p("channel"),
            occurred_at=p("occurred_at"), currency=p("currency"), total=p("total"), refunded_amount=Decimal(0),
            points_earned=p("points"), bonus_points=p("bonus_points"), points_reversed=0, lot_id=p("lot_id"),
            recorded_at=p("now"), lines=p("lines")),
        *OUTBOX.prepared_inserts(2),
        IDEMPOTENCY.prepared_completion(),
    ]
    if with_lot:
        statements.append(insert(lot).values(
            lot_id=p("lot_id"), member_id=p("member_id"), entry_id=p("entry_id"), points=p("points"),
            remaining=p("remaining"), earned_at=p("now"), expires_at=p("expires_at"),
            available_at=p("available_at"), pending=p("lot_pending")))
    return WritesTogether(*statements)


_PURCHASE_WRITES = {True: _purchase_writes(with_lot=True), False: _purchase_writes(with_lot=False)}


async def _credit_purchase(session: AsyncSession, body: schemas.PurchaseIn, member: Any,
                           earning: domain.Earning) -> dict[str, Any]:
    """Every row of a purchase, written at once: member figures, ledger entry, lot, purchase, events and the
    answer to replay. The figures move as ``ledger.credit`` moves them; the member row is locked."""
    now = utcnow()
    points = earning.points
    occurred = body.occurred_at.astimezone(UTC)
    available_at = occurred + timedelta(days=member.pending_days) if member.pending_days else None
    pending = available_at is not None and available_at > now
    available, pending_points = member.available, member.pending
    if pending:
        pending_points += points
        remaining = points
    else:
        remaining = ledger.lot_remaining(points, available)
        available += points
    with_lot = points > 0
    status = "pending" if pending and with_lot else "credited"
    answer = schemas.PurchaseResult(
        purchase_id=body.purchase_id, member_id=body.member_id, points_earned=points,
        status=status, breakdown=[schemas.BreakdownItem(rule_id=r, points=p) for r, p in earning.breakdown],
        balance=schemas.BalanceShort(available=available, pending=pending_points),
    ).model_dump(mode="json")
    values = {
        "member_id": body.member_id, "purchase_id": body.purchase_id, "now": now, "points": points,
        "available": available, "pending": pending_points, "lifetime_earned": member.lifetime_earned + points,
        "purchase_count": member.purchase_count + 1,
        "birthday_bonus_year": body.occurred_at.year if earning.birthday_bonus else member.birthday_bonus_year,
        "entry_id": member.entry_id, "balance_after": available + pending_points,
        "rule_ids": earning.rule_ids or None,
        "store_id": body.store_id, "channel": body.channel, "occurred_at": body.occurred_at,
        "currency": body.currency, "total": body.total, "bonus_points": earning.bonus_points,
        "lot_id": member.lot_id if with_lot else None,
        "lines": [line.model_dump(mode="json") for line in body.lines] if body.lines else None,
        "remaining": remaining, "expires_at": ledger.expiry_for(occurred, member.expiry_days),
        "available_at": available_at or now, "lot_pending": pending,
        **OUTBOX.bind(
            session,
            events.PurchaseRecorded(
                member_id=body.member_id, purchase_id=body.purchase_id, store_id=body.store_id,
                channel=body.channel, occurred_at=body.occurred_at, currency=body.currency, total=body.total,
                points_earned=points,
            ),
            events.PointsEarned(
                member_id=body.member_id, purchase_id=body.purchase_id, points=points, status=status,
                balance=events.BalanceSnapshot(available=available, pending=pending_points),
                occurred_at=body.occurred_at,
            ),
        ),
        **IDEMPOTENCY.completion_params("purchase", body.purchase_id, 201, answer),
    }
    await _PURCHASE_WRITES[with_lot].execute(session, values)
    return answer


async def _referral_bonus(session: AsyncSession, member_id: str, referred_by: str, expiry_days: int,
                          bonuses: list[domain.BonusRule], purchase_id: str) -> None:
    """The referrer earns the referral bonuses when the member they brought makes a first purchase."""
    now = utcnow()
    due = [b for b in sorted(bonuses, key=lambda b: b.rule_id) if b.trigger == "referral" and b.window.contains(now)]
    if not due or referred_by == member_id:
        return
    referrer = await session.get(Member, referred_by, with_for_update=True)
    if referrer is None or referrer.status != "active":
        return
    await _settle(session, referrer)
    for bonus in due:
        await _bonus(session, referrer, expiry_days, bonus, purchase_id=purchase_id)


async def record_refund(session: AsyncSession, purchase_id: str, body: schemas.RefundIn
                        ) -> tuple[dict[str, Any], bool]:
    """Reverse the purchase's points in proportion to the amount refunded (bonus points on a full refund).

    Inside the return window the points come out of the purchase's pending lot first. If they were already
    spent, ``available`` goes below zero and later credits repay it.
    """
    replay = await IDEMPOTENCY.claim(session, "refund", body.refund_id, request_hash({
        "purchase_id": purchase_id, **body.model_dump()}))
    if replay is not None:
        return replay, False
    purchase = await session.get(Purchase, purchase_id, with_for_update=True)
    if purchase is None:
        raise NotFound(f"No purchase '{purchase_id}'.")
    left = purchase.total - purchase.refunded_amount
    if body.amount > left:
        raise RefundExceedsPurchase(
            f"Only {left} of purchase '{purchase_id}' is not refunded yet; this refund asks for {body.amount}.")
    member = await _locked_member(session, purchase.member_id)
    points = domain.reversal_for_refund(
        earned_points=purchase.points_earned, bonus_points=purchase.bonus_points,
        already_reversed=purchase.points_reversed, total=purchase.total,
        refunded_before=purchase.refunded_amount, amount=body.amount,
    )
    own_lot = await session.get(Lot, purchase.lot_id, with_for_update=True) if purchase.lot_id else None
    purchase.refunded_amount += body.amount
    purchase.points_reversed += points
    if points:
        await ledger.debit(session, member, "reversal", points, first=own_lot, purchase_id=purchase_id,
                           refund_id=body.refund_id)
    session.add(Refund(refund_id=body.refund_id, purchase_id=purchase_id, member_id=member.member_id,
                       amount=body.amount, points_reversed=points, occurred_at=body.occurred_at,
                       recorded_at=utcnow()))
    await OUTBOX.add(
        session,
        events.PurchaseRefunded(
            member_id=member.member_id, purchase_id=purchase_id, refund_id=body.refund_id,
            occurred_at=body.occurred_at, currency=purchase.currency, amount=body.amount, points_reversed=points,
            purchase_occurred_at=purchase.occurred_at,
        ),
        events.PointsReversed(member_id=member.member_id, purchase_id=purchase_id, refund_id=body.refund_id,
                              points=points, balance=_snapshot(member)),
    )
    answer = schemas.RefundResult(
        refund_id=body.refund_id, purchase_id=purchase_id, points_reversed=points,
        balance=schemas.BalanceShort(available=member.available, pending=member.pending),
    ).model_dump(mode="json")
    await IDEMPOTENCY.complete(session, "refund", body.refund_id, 201, answer)
    return answer, True


# --- operators -------------------------------------------------------------------------------------


async def adjust(session: AsyncSession, member_id: str, body: schemas.AdjustmentIn, actor: str
                 ) -> tuple[dict[str, Any], bool]:
    """A manual correction; a negative one cannot take the available balance below zero."""
    replay = await IDEMPOTENCY.claim(session, "adjustment", body.adjustment_id,
                                     request_hash({"member_id": member_id, **body.model_dump()}))
    if replay is not None:
        return replay, False
    member = await _locked_member(session, member_id)
    program = await get_program(session)
    refs: dict[str, Any] = {"adjustment_id": body.adjustment_id, "actor": actor, "note": body.reason}
    if body.points > 0:
        entry, _ = await ledger.credit(session, member, "adjust", body.points,
                                       expires_at=ledger.expiry_for(utcnow(), program.expiry_days), **refs)
    else:
        if member.available < -body.points:
            raise InsufficientPoints(
                f"Member '{member_id}' has {member.available} points available; cannot remove {-body.points}.")
        entry, _ = await ledger.debit(session, member, "adjust", -body.points, **refs)
    await OUTBOX.add(session, events.PointsAdjusted(
        member_id=member_id, points=body.points, balance=_snapshot(member), adjustment_id=body.adjustment_id,
        reason=body.reason, actor=actor))
    answer = entry_out(entry).model_dump(mode="json")
    await IDEMPOTENCY.complete(session, "adjustment", body.adjustment_id, 201, answer)
    return answer, True


async def transfer(session: AsyncSession, member_id: str, body: schemas.TransferIn, actor: str
                   ) -> tuple[dict[str, Any], bool]:
    """Move available points to another member; the receiver's lots keep the sender's expiry dates."""
    replay = await IDEMPOTENCY.claim(session, "transfer", body.transfer_id,
                                     request_hash({"member_id": member_id, **body.model_dump()}))
    if replay is not None:
        return replay, False
    if body.to_member_id == member_id:
        raise InvalidRequest("to_member_id: a member cannot transfer to itself",
                             errors=[{"loc": ["body", "to_member_id"], "msg": "same as the sender"}])
    # Lock both rows in id order so that two opposite transfers cannot deadlock.
    locked = {m: await _locked_member(session, m) for m in sorted((member_id, body.to_member_id))}
    sender, receiver = locked[member_id], locked[body.to_member_id]
    for member in (sender, receiver):
        if member.status != "active":
            raise MemberInactive(f"Member '{member.member_id}' is {member.status}.")
    if sender.available < body.points:
        raise InsufficientPoints(
            f"Member '{member_id}' has {sender.available} points available; cannot transfer {body.points}.")
    refs: dict[str, Any] = {"transfer_id": body.transfer_id, "actor": actor, "note": body.reason}
    out_entry, taken = await ledger.debit(session, sender, "transfer_out", body.points, **refs)
    in_entry = await ledger.receive(session, receiver, "transfer_in", taken, **refs)
    await OUTBOX.add(
        session,
        events.PointsTransferred(member_id=member_id, points=body.points, balance=_snapshot(sender),
                                 transfer_id=body.transfer_id, to_member_id=body.to_member_id, direction="out"),
        events.PointsTransferred(member_id=body.to_member_id, points=body.points, balance=_snapshot(receiver),
                                 transfer_id=body.transfer_id, to_member_id=body.to_member_id, direction="in"),
    )
    answer = schemas.TransferResult(
        transfer_id=body.transfer_id, from_member_id=member_id, to_member_id=body.to_member_id,
        points=body.points, entries=[entry_out(out_entry), entry_out(in_entry)],
    ).model_dump(mode="json")
    await IDEMPOTENCY.complete(session, "transfer", body.transfer_id, 201, answer)
    return answer, True


async def members_due(session: AsyncSession, limit: int = 500) -> list[str]:
    """Members with a lot to release or expire now (the expiry job works through them)."""
    rows = await session.execute(
        select(Lot.member_id).where(ledger.due_lots_clause(utcnow())).distinct().limit(limit))
    return [row[0] for row in rows]


async def settle_member(session: AsyncSession, member_id: str) -> None:
    await _locked_member(session, member_id)


# --- events from other services --------------------------------------------------------------------


async def apply_tier_change(session: AsyncSession, data: events.TierChanged) -> None:
    """Remember the member's tier so that later purchases earn with its multiplier."""
    await session.execute(
        update(Member).where(Member.member_id == data.member_id)
        .values(tier_id=data.to_tier, earn_multiplier=data.earn_multiplier)
    )


async def pay_redemption(session: AsyncSession, data: events.RedemptionRequested) -> None:
    """Debit a redemption's points or decline it. Asked again, answer the same way without paying twice."""
    await pay_redemptions(session, [data])


async def pay_redemptions(session: AsyncSession, batch: Sequence[events.RedemptionRequested]) -> None:
    """``pay_redemption`` for a consumer batch, each request decided in order as if alone: what was decided
    before and the members (locked, in id order) are read once for the batch, and only members with a due
    lot are settled first, as every use case that moves points does."""
    now = utcnow()
    ids = list(dict.fromkeys(data.redemption_id for data in batch))
    decided = {debit.redemption_id: debit for debit in (await session.execute(
        select(RedemptionDebit).where(RedemptionDebit.redemption_id.in_(ids)))).scalars()}
    member_ids = sorted({data.member_id for data in batch} | {debit.member_id for debit in decided.values()})
    members = {member.member_id: member for member in (await session.execute(
        select(Member).where(Member.member_id.in_(member_ids)).order_by(Member.member_id).with_for_update()
    )).scalars()}
    due = set((await session.execute(
        select(Lot.member_id).where(Lot.member_id.in_(list(members)), ledger.due_lots_clause(now)).distinct()
    )).scalars())
    for member_id in sorted(due):
        await _settle(session, members[member_id])
    for data in batch:
        seen = decided.get(data.redemption_id)
        if seen is not None:
            await OUTBOX.add(session, _redemption_answer(seen, members.get(seen.member_id)), repeated=True)
            continue
        member = members.get(data.member_id)
        reason = None
        if member is None:
            reason = "member-not-found"
        elif member.status != "active":
            reason = "member-inactive"
        elif member.available < data.points_cost:
            reason = "insufficient-points"
        debit = decided[data.redemption_id] = RedemptionDebit(
            redemption_id=data.redemption_id, member_id=data.member_id, points=data.points_cost,
            outcome="declined" if reason else "spent", reason=reason, refunded=False, decided_at=utcnow(),
        )
        session.add(debit)
        if member is not None and reason is None:
            await ledger.debit(session, member, "spend", data.points_cost, redemption_id=data.redemption_id)
        await OUTBOX.add(session, _redemption_answer(debit, member))
    await session.flush()


async def refund_redemption(session: AsyncSession, data: events.RedemptionCancelled) -> None:
    """A cancelled redemption gives its points back once, as a new lot with the program's expiry."""
    debit = await session.get(RedemptionDebit, data.redemption_id, with_for_update=True)
    if debit is None or debit.outcome != "spent" or debit.refunded:
        return
    member = await _locked_member(session, debit.member_id)
    program = await get_program(session)
    debit.refunded = True
    member.lifetime_spent -= debit.points
    await ledger.credit(session, member, "refund", debit.points, redemption_id=debit.redemption_id,
                        expires_at=ledger.expiry_for(utcnow(), program.expiry_days))
    await OUTBOX.add(session, events.PointsRefunded(member_id=member.member_id, redemption_id=debit.redemption_id,
                                                    points=debit.points, balance=_snapshot(member)))


def _redemption_answer(debit: RedemptionDebit, member: Member | None) -> events.EventData:
    if debit.outcome == "spent":
        assert member is not None
        return events.PointsSpent(member_id=debit.member_id, redemption_id=debit.redemption_id,
                                  points=debit.points, balance=_snapshot(member))
    return events.PointsSpendDeclined(member_id=debit.member_id, redemption_id=debit.redemption_id,
                                      points=debit.points, reason=debit.reason)
