"""Purchases and their refunds: the points a purchase earns, credited with every row it writes in one
statement (the fast path, benchmarked), and the points a refund takes back."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Insert, Select, Update, and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain, schemas
from services.points.errors import CurrencyMismatch, MemberInactive, RefundExceedsPurchase
from services.points.models import Hold, LedgerEntry, Lot, Member, Program, Purchase, Refund, table_of
from services.points.service import (
    IDEMPOTENCY,
    OUTBOX,
    checkout,
    earning,
    holds,
    ledger,
    limits,
    referrals,
    reports,
    rules,
)
from services.points.service.members import get_member, give_bonus, locked_member, settle, snapshot
from services.points.service.program import get_program, zone_of
from shared.clock import utcnow
from shared.db.driver import DriverStatement, WritesTogether
from shared.db.statements import next_id
from shared.db.types import UTCDateTime
from shared.errors import InvalidRequest, NotFound
from shared.http.idempotency import request_hash
from shared.http.types import check_currency_decimals
from shared.messaging import events


async def record_purchase(session: AsyncSession, body: schemas.PurchaseIn, owner: str,
                          stores: frozenset[str] | None = None) -> tuple[dict[str, Any], bool]:
    """Store a purchase and credit its points; returns (answer, created). A retry by the same key (``owner``,
    its name) replays the answer; another key's request with the same ``purchase_id`` is a conflict.

    The common case is three statements: the idempotency claim, one read (member locked, program, whether a
    lot or a hold is due, the ids of the new rows) and one write of every row (``WritesTogether``). A purchase
    paid partly with points reads its hold too, and captures it in that same write when it is still held. A
    member with something due is settled first, and a first purchase of a referred member pays the referral
    bonus, as in the other use cases; a referred member's purchase of the program's ``referral.min_spend``
    settles its referral (``referrals.reward``).
    ``stores``: a store-bound key's, which pays only with holds of its stores.
    """
    hashed = body.model_dump(exclude={"points_paid"} if body.points_paid is None else set())
    replay = await IDEMPOTENCY.claim(session, "purchase", body.purchase_id, request_hash(hashed, owner=owner))
    if replay is not None:
        return replay, False
    member = await _purchase_context(session, body)
    if member.due:
        await locked_member(session, body.member_id)
        await session.flush()
        member = await _purchase_context(session, body)
    if member.status != "active":
        raise MemberInactive(f"Member '{body.member_id}' is {member.status} and earns no points.")
    paid = None if body.points_paid is None else await checkout.pay_purchase(session, body, member, stores)

    found = await rules.active_rules(session, member.rules_version)
    earned = earning.earning_of(body, member, member, *found, paid.value if paid else Decimal(0))
    earned, limited = await limits.apply(session, earned, found, body.member_id, body.occurred_at,
                                         zone_of(member.time_zone), take=True)
    answer = await _credit_purchase(session, body, member, earned, paid, limited)
    if earned.exposed:
        await reports.record_exposure(session, earned.exposed, body.member_id)
    if member.purchase_count == 0 and member.referred_by:
        await _referral_bonus(session, body.member_id, member.referred_by, member.expiry_days, found[1],
                              body.purchase_id)
    if member.referred_by and member.referral:
        answer = await referrals.reward(session, body, member, paid.value if paid else Decimal(0), answer)
    return answer, True


def _purchase_context_query(dialect: str, paying: bool) -> Select[Any]:
    """``paying``: with a second ledger entry id (``spend_entry_id``), for the capture of a held hold that pays
    part of the purchase."""
    member, program = Member.__table__, Program.__table__
    now = bindparam("now", type_=UTCDateTime)
    due = or_(
        select(Lot.lot_id).where(Lot.member_id == bindparam("member_id"), ledger.due_lots_clause(now)).exists(),
        and_(member.c.held > 0, select(Hold.hold_id).where(Hold.member_id == bindparam("member_id"),
                                                           holds.due_clause(now)).exists()))
    return (
        select(member.c.status, member.c.available, member.c.pending, member.c.held, member.c.lifetime_earned,
               member.c.purchase_count, member.c.earn_multiplier, member.c.birth_date,
               member.c.birthday_bonus_year, member.c.referred_by, *earning.audience_columns(member),
               program.c.currency, program.c.points_per_unit, program.c.expiry_days, program.c.pending_days,
               program.c.excluded_categories, program.c.rules_version, program.c.time_zone,
               program.c.max_points_per_purchase, program.c.earn_on_points_paid, program.c.referral,
               due.label("due"),
               next_id(table_of(LedgerEntry), "entry_id", dialect).label("entry_id"),
               next_id(table_of(Lot), "lot_id", dialect).label("lot_id"),
               *([_second_entry_id(dialect).label("spend_entry_id")] if paying else []))
        .select_from(member.join(program, program.c.id == 1))
        .where(member.c.member_id == bindparam("member_id"))
        .with_for_update(of=member)
    )


def _second_entry_id(dialect: str) -> Any:
    """Another id after ``entry_id``: PostgreSQL's sequence gives one each call, SQLite's ``max + 1`` the same
    one every time."""
    first = next_id(table_of(LedgerEntry), "entry_id", dialect)
    return first if dialect == "postgresql" else first + 1


_PURCHASE_CONTEXT = {(dialect, paying): DriverStatement(_purchase_context_query(dialect, paying))
                     for dialect in ("postgresql", "sqlite") for paying in (False, True)}


async def _purchase_context(session: AsyncSession, body: schemas.PurchaseIn) -> Any:
    """The member row locked, the program, whether one of the member's lots is due, and the ids the
    purchase's ledger entry and lot will take, in one statement. Raises what a purchase that cannot be
    recorded gets (another currency, no such member)."""
    query = _PURCHASE_CONTEXT[(await session.connection()).dialect.name, body.points_paid is not None]
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


def _purchase_writes(with_lot: bool, capturing: bool) -> WritesTogether:
    """Every row a purchase writes, as one statement on PostgreSQL; ``_credit_purchase`` gives the values.
    ``capturing``: with the capture of the hold that pays part of it (``checkout.capture_statements``)."""
    p = WritesTogether.value
    member, entry, purchase, lot = table_of(Member), table_of(LedgerEntry), table_of(Purchase), table_of(Lot)
    spending = {"held": p("held"), "lifetime_spent": member.c.lifetime_spent + p("spent_points")} if capturing else {}
    statements: list[Insert | Update] = [
        update(member).where(member.c.member_id == p("member_id")).values(
            available=p("available"), pending=p("pending"), lifetime_earned=p("lifetime_earned"),
            purchase_count=p("purchase_count"), birthday_bonus_year=p("birthday_bonus_year"), **spending),
        *(checkout.capture_statements() if capturing else []),
        insert(entry).values(
            entry_id=p("entry_id"), member_id=p("member_id"), kind="earn", points=p("points"),
            balance_after=p("balance_after"), occurred_at=p("now"), purchase_id=p("purchase_id"),
            rule_ids=p("rule_ids")),
        insert(purchase).values(
            purchase_id=p("purchase_id"), member_id=p("member_id"), store_id=p("store_id"), channel=p("channel"),
            occurred_at=p("occurred_at"), currency=p("currency"), total=p("total"), refunded_amount=Decimal(0),
            points_earned=p("points"), bonus_points=p("bonus_points"), points_reversed=0, lot_id=p("lot_id"),
            recorded_at=p("now"), lines=p("lines"), hold_id=p("hold_id"), points_paid=p("points_paid"),
            points_paid_value=p("points_paid_value"), points_returned=0, limited=p("limited", JSON())),
        *OUTBOX.prepared_inserts(3 if capturing else 2),
        IDEMPOTENCY.prepared_completion(),
    ]
    if with_lot:
        statements.append(insert(lot).values(
            lot_id=p("lot_id"), member_id=p("member_id"), entry_id=p("entry_id"), points=p("points"),
            remaining=p("remaining"), earned_at=p("now"), expires_at=p("expires_at"),
            available_at=p("available_at"), pending=p("lot_pending")))
    return WritesTogether(*statements)


_PURCHASE_WRITES = {(with_lot, capturing): _purchase_writes(with_lot, capturing)
                    for with_lot in (False, True) for capturing in (False, True)}


async def _credit_purchase(session: AsyncSession, body: schemas.PurchaseIn, member: Any,
                           earned: domain.Earning, paid: checkout.Payment | None, limited: limits.Record
                           ) -> dict[str, Any]:
    """Every row of a purchase, written at once: member figures, ledger entry, lot, purchase, events and the
    answer to replay, and the capture of the hold that pays part of it if it was still held. The figures are
    ``domain.credit_figures``, as ``ledger.credit`` moves them; the member row is locked."""
    now = utcnow()
    points = earned.points
    occurred = body.occurred_at.astimezone(UTC)
    available_at = occurred + timedelta(days=member.pending_days) if member.pending_days else None
    capture = paid.capture if paid else None
    held = paid.held if paid and paid.held is not None else member.held
    figures = domain.credit_figures("earn", points, available=member.available, pending=member.pending,
                                    lifetime_earned=member.lifetime_earned, now=now, available_at=available_at,
                                    held=held)
    balance = events.BalanceSnapshot(available=figures.available, pending=figures.pending, held=held)
    entry_id = member.entry_id
    spend_entry_id = None
    if capture is not None:  # the spend comes first in the ledger, as a capture before the purchase would
        spend_entry_id, entry_id = sorted((member.entry_id, member.spend_entry_id))
    with_lot = points > 0
    status = "pending" if figures.lot_pending and with_lot else "credited"
    answer = schemas.PurchaseResult(
        purchase_id=body.purchase_id, member_id=body.member_id, points_earned=points,
        status=status, breakdown=[schemas.BreakdownItem(rule_id=r, points=p) for r, p in earned.breakdown],
        balance=schemas.BalanceShort(available=figures.available, pending=figures.pending),
    ).model_dump(mode="json")
    values = {
        "member_id": body.member_id, "purchase_id": body.purchase_id, "now": now, "points": points,
        "available": figures.available, "pending": figures.pending, "lifetime_earned": figures.lifetime_earned,
        "purchase_count": member.purchase_count + 1,
        "birthday_bonus_year": earned.birthday_year or member.birthday_bonus_year,
        "entry_id": entry_id, "balance_after": figures.balance_after,
        "rule_ids": earned.rule_ids or None,
        "store_id": body.store_id, "channel": body.channel, "occurred_at": body.occurred_at,
        "currency": body.currency, "total": body.total, "bonus_points": earned.bonus_points,
        "lot_id": member.lot_id if with_lot else None,
        "lines": [line.model_dump(mode="json") for line in body.lines] if body.lines else None,
        "remaining": figures.remaining, "expires_at": domain.expiry_for(occurred, member.expiry_days),
        "available_at": figures.available_at, "lot_pending": figures.lot_pending,
        "hold_id": paid.hold_id if paid else None, "points_paid": paid.points if paid else 0,
        "points_paid_value": paid.value if paid else Decimal(0), "limited": limited or None,
        **(capture or {}), "spend_entry_id": spend_entry_id,
        **OUTBOX.bind(
            session,
            *([paid.spent] if paid and paid.spent else []),
            events.PurchaseRecorded(
                member_id=body.member_id, purchase_id=body.purchase_id, store_id=body.store_id,
                channel=body.channel, occurred_at=body.occurred_at, currency=body.currency, total=body.total,
                points_earned=points,
            ),
            events.PointsEarned(
                member_id=body.member_id, purchase_id=body.purchase_id, points=points, status=status,
                balance=balance,
                occurred_at=body.occurred_at,
            ),
        ),
        **IDEMPOTENCY.completion_params("purchase", body.purchase_id, 201, answer),
    }
    await _PURCHASE_WRITES[with_lot, capture is not None].execute(session, values)
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
    await settle(session, referrer)
    facts = earning.member_facts(referrer)  # the referrer is who a referral rule's audience is about
    for bonus in (b for b in due if b.audience.admits(facts, now)):
        await give_bonus(session, referrer, expiry_days, bonus, purchase_id=purchase_id)


def _check_refund(purchase: Purchase, body: schemas.RefundIn) -> None:
    """What the body alone cannot tell: the amount in the purchase's currency (no more decimals than it has,
    as a purchase), and a moment not before the purchase's."""
    try:
        check_currency_decimals(body.amount, purchase.currency)
    except ValueError as exc:
        raise InvalidRequest(f"amount: {exc}", errors=[{"loc": ["body", "amount"], "msg": str(exc)}]) from None
    if body.occurred_at < purchase.occurred_at:
        message = f"is before the purchase ({purchase.occurred_at.isoformat()})"
        raise InvalidRequest(f"occurred_at: {message}", errors=[{"loc": ["body", "occurred_at"], "msg": message}])


async def record_refund(session: AsyncSession, purchase_id: str, body: schemas.RefundIn, owner: str,
                        stores: frozenset[str] | None = None) -> tuple[dict[str, Any], bool]:
    """Reverse the purchase's points in proportion to the amount refunded (bonus points on a full refund).

    Inside the return window the points come out of the purchase's pending lot first. If they were already
    spent, ``available`` goes below zero and later credits repay it. ``owner`` is the calling key's name (a
    refund id is that key's own); ``stores``, those of a store-bound key: a purchase of another store (or of
    none) is answered as one that does not exist, so such a key learns nothing of other stores' purchases.
    """
    replay = await IDEMPOTENCY.claim(session, "refund", body.refund_id, request_hash({
        "purchase_id": purchase_id, **body.model_dump()}, owner=owner))
    if replay is not None:
        return replay, False
    purchase = await session.get(Purchase, purchase_id, with_for_update=True)
    if purchase is None or (stores is not None and purchase.store_id not in stores):
        raise NotFound(f"No purchase '{purchase_id}'.")
    _check_refund(purchase, body)
    left = purchase.total - purchase.refunded_amount
    if body.amount > left:
        raise RefundExceedsPurchase(
            f"Only {left} of purchase '{purchase_id}' is not refunded yet; this refund asks for {body.amount}.")
    member = await locked_member(session, purchase.member_id)
    points = domain.reversal_for_refund(
        earned_points=purchase.points_earned, bonus_points=purchase.bonus_points,
        already_reversed=purchase.points_reversed, total=purchase.total,
        refunded_before=purchase.refunded_amount, amount=body.amount,
    )
    own_lot = await session.get(Lot, purchase.lot_id, with_for_update=True) if purchase.lot_id else None
    returned = domain.points_to_return(points_paid=purchase.points_paid, returned_before=purchase.points_returned,
                                       total=purchase.total, refunded=purchase.refunded_amount + body.amount)
    purchase.refunded_amount += body.amount
    purchase.points_reversed += points
    await limits.give_back(session, purchase)
    if returned:
        await _return_points_paid(session, member, purchase, body.refund_id, returned)
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
                              points=points, balance=snapshot(member)),
    )
    if purchase.refunded_amount >= purchase.total:
        await referrals.reverse(session, purchase, member, body.refund_id)
    answer = schemas.RefundResult(
        refund_id=body.refund_id, purchase_id=purchase_id, points_reversed=points, points_returned=returned,
        balance=schemas.BalanceShort(available=member.available, pending=member.pending),
    ).model_dump(mode="json")
    await IDEMPOTENCY.complete(session, "refund", body.refund_id, 201, answer)
    return answer, True


async def _return_points_paid(session: AsyncSession, member: Member, purchase: Purchase, refund_id: str,
                              points: int) -> None:
    """A refund of a purchase paid partly with points gives back that share of the points, as a new lot (a
    cancelled redemption's points come back the same way) that no longer counts as spent."""
    program = await get_program(session)
    purchase.points_returned += points
    member.lifetime_spent -= points
    await ledger.credit(session, member, "refund", points, expires_at=domain.expiry_for(utcnow(), program.expiry_days),
                        purchase_id=purchase.purchase_id, refund_id=refund_id, hold_id=purchase.hold_id)
    await OUTBOX.add(session, events.PointsRefunded(
        member_id=member.member_id, hold_id=purchase.hold_id, purchase_id=purchase.purchase_id,
        refund_id=refund_id, points=points, balance=snapshot(member)))
