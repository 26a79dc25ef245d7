"""The checkout: quote a basket, hold points, capture or void the hold, and the hold a purchase names in
``points_paid``. points owns the balance, so paying with points needs no saga: a hold is one transaction that
takes the points out of ``available`` (under the member's row lock, so two holds never take the same
points), and a capture or a void is another.

Captures and voids are safe to retry in any order: a hold that reached its end answers a repeat of the call
that ended it with the answer it gave (stored on the hold), and the other call with ``409``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Insert, Select, Update, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain, schemas
from services.points.errors import (
    CurrencyMismatch,
    HoldExpired,
    HoldNotActive,
    InsufficientPoints,
    MemberInactive,
)
from services.points.models import Hold, LedgerEntry, Lot, Member, Program, table_of
from services.points.service import IDEMPOTENCY, OUTBOX, earning, holds, ledger, limits, rules
from services.points.service.members import get_member, locked_member, settle
from services.points.service.program import get_program, zone_of
from shared.clock import utcnow
from shared.db.database import Database
from shared.db.driver import DriverStatement, WritesTogether
from shared.db.types import UTCDateTime
from shared.errors import IdempotencyConflict, InvalidRequest, LoyaltyError, NotFound
from shared.http.idempotency import request_hash
from shared.http.types import check_currency_decimals, currency_decimals
from shared.messaging import events


def invalid(loc: list[str | int], message: str) -> LoyaltyError:
    return InvalidRequest(f"{'.'.join(str(part) for part in loc[1:])}: {message}",
                          errors=[{"loc": loc, "msg": message}])


def money(amount: Decimal, currency: str) -> Decimal:
    """An amount with its currency's decimals, whatever the column keeps ("0.15", not "0.1500")."""
    return amount.quantize(Decimal(1).scaleb(-currency_decimals(currency)))


def hold_out(hold: Hold, member: Member) -> dict[str, Any]:
    ended = hold.status == "captured"
    answer = schemas.Hold(
        hold_id=hold.hold_id, member_id=hold.member_id, store_id=hold.store_id, status=hold.status,
        points=hold.captured_points if ended else hold.points,
        value=money(hold.captured_value if ended else hold.value, hold.currency), currency=hold.currency,
        held_points=hold.points, order_total=None if hold.order_total is None else money(hold.order_total,
                                                                                         hold.currency),
        purchase_id=hold.purchase_id, created_at=hold.created_at,
        expires_at=hold.expires_at, settled_at=hold.settled_at,
        balance=schemas.BalanceHeld(available=member.available, pending=member.pending, held=member.held),
    )
    return answer.model_dump(mode="json")


def _hold_context_query() -> Select[Any]:
    member, program = table_of(Member), table_of(Program)
    return (
        select(member.c.status, member.c.available, member.c.pending, member.c.held,
               program.c.currency, program.c.min_points, program.c.point_value, program.c.max_share,
               program.c.hold_minutes, _due(member).label("due"))
        .select_from(member.join(program, program.c.id == 1))
        .where(member.c.member_id == bindparam("member_id"))
        .with_for_update(of=member)
    )


def _due(member: Any) -> Any:
    """Whether the member has a lot or a hold due at ``now``, which settling first takes care of."""
    now = bindparam("now", type_=UTCDateTime)
    return or_(
        select(Lot.lot_id).where(Lot.member_id == member.c.member_id, ledger.due_lots_clause(now)).exists(),
        and_(member.c.held > 0, select(Hold.hold_id).where(Hold.member_id == member.c.member_id,
                                                           holds.due_clause(now)).exists()))


_HOLD_CONTEXT = DriverStatement(_hold_context_query())
_LOTS = table_of(Lot)
_SPENDABLE_LOTS = DriverStatement(
    select(_LOTS.c.lot_id, _LOTS.c.remaining, _LOTS.c.expires_at)
    .where(_LOTS.c.member_id == bindparam("member_id"), _LOTS.c.remaining > 0, _LOTS.c.pending.is_(False))
    .order_by(_LOTS.c.expires_at, _LOTS.c.lot_id))


def _hold_writes(with_lots: bool) -> WritesTogether:
    """Every row a hold writes, as one statement on PostgreSQL (``create_hold`` gives the values); its lots
    with the others (``with_lots``) from two arrays, which PostgreSQL reads and SQLite does not."""
    p = WritesTogether.value
    member, hold = table_of(Member), table_of(Hold)
    taken = func.unnest(p("lot_ids", ARRAY(BigInteger())), p("lot_points", ARRAY(BigInteger()))).table_valued(
        "lot_id", "take").render_derived(name="taken")
    lots = [update(_LOTS).where(_LOTS.c.lot_id == taken.c.lot_id).values(
        remaining=_LOTS.c.remaining - taken.c.take)] if with_lots else []
    return WritesTogether(
        *lots,
        update(member).where(member.c.member_id == p("member_id")).values(available=p("available"),
                                                                          held=p("held")),
        insert(hold).values(
            hold_id=p("hold_id"), member_id=p("member_id"), store_id=p("store_id"), status="held",
            points=p("points"), value=p("value"), currency=p("currency"), order_total=p("order_total"),
            captured_points=0, captured_value=Decimal(0), lots=p("lots", JSON()), actor=p("actor"),
            created_at=p("now"), expires_at=p("expires_at")),
        *OUTBOX.prepared_inserts(1),
        IDEMPOTENCY.prepared_completion(),
    )


_HOLD_WRITES = {with_lots: _hold_writes(with_lots) for with_lots in (False, True)}
_TAKE_FROM_LOT = update(_LOTS).where(_LOTS.c.lot_id == bindparam("part_lot")).values(
    remaining=_LOTS.c.remaining - bindparam("part_points"))


async def _hold_context(session: AsyncSession, body: schemas.HoldIn) -> Any:
    """The member row locked with the program's settings, settled first when something is due; the errors a
    hold meets in the order it meets them."""
    params = {"member_id": body.member_id, "now": utcnow()}
    rows = await _HOLD_CONTEXT.run_in(session, params)
    if not rows:
        await get_program(session)  # a new database: the program row first, then the member is looked for
        await get_member(session, body.member_id)
        rows = await _HOLD_CONTEXT.run_in(session, params)
    if rows[0].due:
        await locked_member(session, body.member_id)
        await session.flush()
        rows = await _HOLD_CONTEXT.run_in(session, params)
    return rows[0]


async def create_hold(session: AsyncSession, body: schemas.HoldIn, owner: str) -> tuple[dict[str, Any], bool]:
    """Set points aside for an order: out of ``available`` until captured, voided or ``hold_minutes`` pass.
    Idempotent by ``hold_id`` (the calling key's own); a rejected hold leaves nothing behind.

    The soonest-expiring available lots give the points (as ``ledger.take`` takes a spend), read after the
    member's lock (so a hold that waited for it sees what the one before took), and the lots, the member, the
    hold, its event and the answer are written in one statement: a hold is on the checkout's path."""
    replay = await IDEMPOTENCY.claim(session, "hold", body.hold_id, request_hash(body, owner=owner))
    if replay is not None:
        return replay, False
    context = await _hold_context(session, body)
    currency = body.currency or context.currency
    if currency != context.currency:
        raise CurrencyMismatch(f"The program runs in {context.currency}; this hold is in {currency}.")
    if body.order_total is not None:
        try:
            check_currency_decimals(body.order_total, currency)
        except ValueError as exc:
            raise invalid(["body", "order_total"], str(exc)) from None
    if body.points < context.min_points:
        raise invalid(["body", "points"], f"a hold takes at least {context.min_points} points (the program's "
                                          "redemption.min_points)")
    value = domain.points_value(body.points, context.point_value, currency_decimals(currency))
    if body.order_total is not None and value > body.order_total * context.max_share:
        raise invalid(["body", "points"], f"{body.points} points are worth {value} {currency}, more than "
                                          f"{context.max_share} of the order's {body.order_total} (the "
                                          "program's redemption.max_share)")
    if context.status != "active":
        raise MemberInactive(f"Member '{body.member_id}' is {context.status} and cannot pay with points.")
    if context.available < body.points:
        raise InsufficientPoints(f"Member '{body.member_id}' has {context.available} points available; "
                                 f"{body.points} are needed.")
    lots = [domain.LotState(row.lot_id, row.remaining, row.expires_at)
            for row in await _SPENDABLE_LOTS.run_in(session, {"member_id": body.member_id})]
    parts = [[lot_id, part] for lot_id, part in domain.take_from_lots(lots, body.points)]
    now = utcnow()
    expires_at = now + timedelta(minutes=context.hold_minutes)
    figures = {"available": context.available - body.points, "pending": context.pending,
               "held": context.held + body.points}
    answer = schemas.Hold(
        hold_id=body.hold_id, member_id=body.member_id, store_id=body.store_id, status="held", points=body.points,
        value=value, currency=currency, held_points=body.points,
        order_total=None if body.order_total is None else money(body.order_total, currency), purchase_id=None,
        created_at=now, expires_at=expires_at, settled_at=None, balance=schemas.BalanceHeld(**figures),
    ).model_dump(mode="json")
    together = (await session.connection()).dialect.name == "postgresql"
    if parts and not together:
        await session.execute(_TAKE_FROM_LOT, [{"part_lot": lot_id, "part_points": part} for lot_id, part in parts])
    await _HOLD_WRITES[together].execute(session, {
        "lot_ids": [lot_id for lot_id, _ in parts], "lot_points": [part for _, part in parts],
        "member_id": body.member_id, "available": figures["available"], "held": figures["held"],
        "hold_id": body.hold_id, "store_id": body.store_id, "points": body.points, "value": value,
        "currency": currency, "order_total": body.order_total, "lots": parts, "actor": owner, "now": now,
        "expires_at": expires_at,
        **OUTBOX.bind(session, events.PointsHeld(
            member_id=body.member_id, hold_id=body.hold_id, points=body.points, expires_at=expires_at,
            balance=events.BalanceSnapshot(**figures))),
        **IDEMPOTENCY.completion_params("hold", body.hold_id, 201, answer),
    })
    return answer, True


async def _locked_hold(session: AsyncSession, hold_id: str, stores: frozenset[str] | None) -> tuple[Hold, Member]:
    """The hold and its member, both locked (member first, as every path takes them), the member settled
    (which ends the hold if its time is up). A hold of another store is answered as one that does not exist
    to a store-bound key."""
    found = await session.get(Hold, hold_id)
    if found is None or (stores is not None and found.store_id not in stores):
        raise NotFound(f"No hold '{hold_id}'.")
    member = await locked_member(session, found.member_id)
    hold = await session.get(Hold, hold_id, with_for_update=True, populate_existing=True)
    assert hold is not None
    return hold, member


_HOLDS = table_of(Hold)
_HOLD_END = DriverStatement(
    select(_HOLDS.c.hold_id, _HOLDS.c.store_id, _HOLDS.c.status, _HOLDS.c.points, _HOLDS.c.captured_points,
           _HOLDS.c.purchase_id, _HOLDS.c.expires_at, _HOLDS.c.answer)
    .where(_HOLDS.c.hold_id == bindparam("hold_id")))


async def ended(db: Database, hold_id: str, stores: frozenset[str] | None) -> Any | None:
    """The hold when it has ended already, read in one statement outside any transaction: an end is final,
    so a repeat of a capture or a void (the POS retrying) needs no lock. None while it is still held."""
    rows = await _HOLD_END.read(db.engine, {"hold_id": hold_id})
    if not rows or (stores is not None and rows[0].store_id not in stores):
        raise NotFound(f"No hold '{hold_id}'.")
    return rows[0] if rows[0].status != "held" and rows[0].answer is not None else None


def repeat_capture(hold: Any, body: schemas.CaptureIn) -> dict[str, Any]:
    """The answer to a capture of a hold that has ended: the first capture's again, when this one asks for the
    same; else the 409 that says why not."""
    if hold.status != "captured":
        raise _not_active(hold)
    wanted = body.points if body.points is not None else hold.points
    if wanted != hold.captured_points or body.purchase_id not in (None, hold.purchase_id):
        raise IdempotencyConflict(f"Hold '{hold.hold_id}' was captured for {hold.captured_points} points"
                                  f"{f' with purchase {hold.purchase_id!r}' if hold.purchase_id else ''}; "
                                  "this capture asks for something else.")
    answer: dict[str, Any] = hold.answer
    return answer


def repeat_void(hold: Any) -> dict[str, Any]:
    """The answer to a void of a hold that has ended: the first void's again, else the 409 that says why not."""
    if hold.status != "voided":
        raise _not_active(hold)
    answer: dict[str, Any] = hold.answer
    return answer


def _not_active(hold: Any) -> LoyaltyError:
    if hold.status == "expired":
        return HoldExpired(f"Hold '{hold.hold_id}' expired at {hold.expires_at.isoformat()}; its points are back.")
    return HoldNotActive(f"Hold '{hold.hold_id}' is {hold.status}; a captured or voided hold does not change "
                         "again.")


async def capture(session: AsyncSession, hold_id: str, body: schemas.CaptureIn,
                  stores: frozenset[str] | None = None) -> dict[str, Any]:
    """Spend the hold's points (all, or ``body.points`` of them, the rest going back). A repeat of the same
    capture answers as the first did; another capture of a captured hold is ``409 idempotency-conflict``.
    (The API answers repeats from ``ended`` first; this is the path of a hold still held when read.)"""
    hold, member = await _locked_hold(session, hold_id, stores)
    if hold.status != "held" and hold.answer is not None:
        return repeat_capture(hold, body)  # ended since the API looked
    if hold.status != "held":
        raise _not_active(hold)
    wanted = body.points if body.points is not None else hold.points
    if wanted > hold.points:
        raise invalid(["body", "points"], f"at most the {hold.points} points held")
    program = await get_program(session)
    hold.purchase_id = body.purchase_id
    await holds.end(session, member, hold, "captured", captured=wanted,
                    value=domain.points_value(wanted, program.point_value, currency_decimals(hold.currency)))
    await settle(session, member)  # a part given back to a lot past its date expires now
    hold.answer = hold_out(hold, member)
    return hold.answer


async def void(session: AsyncSession, hold_id: str, stores: frozenset[str] | None = None) -> dict[str, Any]:
    """Give all the hold's points back. A repeat answers as the first void did; a captured hold is
    ``409 hold-not-active``, an expired one ``409 hold-expired`` (its points are back already)."""
    hold, member = await _locked_hold(session, hold_id, stores)
    if hold.status != "held" and hold.answer is not None:
        return repeat_void(hold)
    if hold.status != "held":
        raise _not_active(hold)
    await holds.end(session, member, hold, "voided")
    await settle(session, member)
    hold.answer = hold_out(hold, member)
    return hold.answer


async def get_hold(session: AsyncSession, hold_id: str, stores: frozenset[str] | None = None) -> dict[str, Any]:
    """The hold as of now: one whose time is up is shown expired (and given back on the way)."""
    hold = await session.get(Hold, hold_id)
    if hold is None or (stores is not None and hold.store_id not in stores):
        raise NotFound(f"No hold '{hold_id}'.")
    if hold.status == "held" and hold.expires_at <= utcnow():
        hold, member = await _locked_hold(session, hold_id, stores)
    else:
        member = await get_member(session, hold.member_id)
    return hold_out(hold, member)


# --- a purchase paid partly with points --------------------------------------------------------------------


def _paying_hold(lock: bool) -> DriverStatement:
    query = select(_HOLDS).where(_HOLDS.c.hold_id == bindparam("hold_id"))
    return DriverStatement(query.with_for_update() if lock else query)


_PAYING_HOLD = {lock: _paying_hold(lock) for lock in (False, True)}


async def points_paid_value(session: AsyncSession, body: schemas.Basket, stores: frozenset[str] | None,
                            *, for_update: bool = False) -> tuple[Any, Decimal]:
    """The hold a basket names in ``points_paid`` (its row) and what its points pay (the captured ones, or
    all the held ones, which a purchase captures); raises what a purchase or a quote naming it gets."""
    assert body.points_paid is not None
    hold_id = body.points_paid.hold_id
    rows = await _PAYING_HOLD[for_update].run_in(session, {"hold_id": hold_id})
    hold = rows[0] if rows else None
    if hold is None or hold.member_id != body.member_id or (stores is not None and hold.store_id not in stores):
        raise invalid(["body", "points_paid", "hold_id"], f"no hold '{hold_id}' of member '{body.member_id}'")
    if hold.status not in ("held", "captured"):
        raise _not_active(hold)
    if hold.status == "held" and hold.expires_at <= utcnow():
        raise HoldExpired(f"Hold '{hold_id}' expired at {hold.expires_at.isoformat()}; its points are back.")
    value = hold.captured_value if hold.status == "captured" else hold.value
    if value > body.total:
        raise invalid(["body", "points_paid"], f"the points of hold '{hold_id}' are worth {value} "
                                               f"{hold.currency}, more than the total {body.total}")
    return hold, value


@dataclass(frozen=True)
class Payment:
    """What a purchase's ``points_paid`` comes to: the hold, its points and their value. When the hold was
    still held the purchase captures it with its own rows: ``capture`` holds the values of
    ``capture_statements`` (and ``spent`` its event), ``held`` the member's held points after it."""

    hold_id: str
    points: int
    value: Decimal
    held: int | None = None
    capture: dict[str, Any] | None = None
    spent: events.PointsSpent | None = None


def capture_statements() -> list[Insert | Update]:
    """The rows a purchase adds when it captures, whole, the hold it names: the ``spend`` entry and the hold.
    The member's held and spent figures are in the purchase's own update of the member row and
    ``points.spent`` among its events, since one statement writes each row once. (``holds.end`` ends a hold
    in the other ways, which are rarer, through the session.)"""
    p = WritesTogether.value
    entry, hold = table_of(LedgerEntry), table_of(Hold)
    return [
        insert(entry).values(entry_id=p("spend_entry_id"), member_id=p("member_id"), kind="spend",
                             points=p("spent"), balance_after=p("spend_balance_after"), occurred_at=p("now"),
                             purchase_id=p("purchase_id"), hold_id=p("hold_id")),
        update(hold).where(hold.c.hold_id == p("hold_id")).values(
            status="captured", captured_points=p("spent_points"), captured_value=p("hold_value"),
            purchase_id=p("purchase_id"), settled_at=p("now"), answer=p("hold_answer", JSON())),
    ]


async def pay_purchase(session: AsyncSession, body: schemas.PurchaseIn, member: Any,
                       stores: frozenset[str] | None) -> Payment:
    """Link the purchase to the hold its ``points_paid`` names, or, when it is still held, give what the
    purchase needs to capture all of it in its own statement; ``member`` is the purchase's context (the member
    row locked and settled, with ``spend_entry_id``). A hold pays one purchase only."""
    hold, value = await points_paid_value(session, body, stores, for_update=True)
    if hold.purchase_id not in (None, body.purchase_id):
        raise HoldNotActive(f"Hold '{hold.hold_id}' pays purchase '{hold.purchase_id}' already.")
    if hold.status == "captured":
        await session.execute(update(_HOLDS).where(_HOLDS.c.hold_id == hold.hold_id)
                              .values(purchase_id=body.purchase_id))
        return Payment(hold.hold_id, hold.captured_points, value)
    now = utcnow()
    held = member.held - hold.points
    figures = {"available": member.available, "pending": member.pending, "held": held}
    answer = schemas.Hold(
        hold_id=hold.hold_id, member_id=hold.member_id, store_id=hold.store_id, status="captured",
        points=hold.points, value=money(hold.value, hold.currency), currency=hold.currency,
        held_points=hold.points,
        order_total=None if hold.order_total is None else money(hold.order_total, hold.currency),
        purchase_id=body.purchase_id, created_at=hold.created_at, expires_at=hold.expires_at, settled_at=now,
        balance=schemas.BalanceHeld(**figures),
    ).model_dump(mode="json")
    capture = {"held": held, "spent_points": hold.points, "spent": -hold.points,
               "spend_balance_after": member.available + member.pending + held, "hold_id": hold.hold_id,
               "hold_value": hold.value, "hold_answer": answer}
    spent = events.PointsSpent(member_id=body.member_id, hold_id=hold.hold_id, points=hold.points,
                               balance=events.BalanceSnapshot(**figures))
    return Payment(hold.hold_id, hold.points, value, held=held, capture=capture, spent=spent)


def _quote_context_query() -> Select[Any]:
    member, program = table_of(Member), table_of(Program)
    due = _due(member)
    return (
        select(member.c.status, member.c.available, member.c.pending, member.c.held, member.c.purchase_count,
               member.c.earn_multiplier, member.c.birth_date, member.c.birthday_bonus_year,
               *earning.audience_columns(member), program.c.currency, program.c.points_per_unit,
               program.c.excluded_categories,
               program.c.rules_version, program.c.time_zone, program.c.max_points_per_purchase,
               program.c.earn_on_points_paid, program.c.point_value, program.c.max_share, program.c.min_points,
               due.label("due"))
        .select_from(member.join(program, program.c.id == 1))
        .where(member.c.member_id == bindparam("member_id"))
    )


_QUOTE_CONTEXT = DriverStatement(_quote_context_query())


async def _quote_context(db: Database, body: schemas.QuoteIn) -> Any:
    """The member's and the program's figures in one statement outside any transaction (a quote is the most
    frequent call of a checkout); a member with a lot or a hold due is settled first, as a balance read
    settles it, and the errors are those a purchase meets, in its order."""
    params = {"member_id": body.member_id, "now": utcnow()}
    rows = await _QUOTE_CONTEXT.read(db.engine, params)
    if not rows or rows[0].due or rows[0].currency != body.currency:
        async with db.transaction() as session:
            currency = (await get_program(session)).currency
            if body.currency != currency:
                raise CurrencyMismatch(f"The program runs in {currency}; this purchase is in {body.currency}.")
            await locked_member(session, body.member_id)
        rows = await _QUOTE_CONTEXT.read(db.engine, params)
    return rows[0]


async def quote(db: Database, body: schemas.QuoteIn, stores: frozenset[str] | None) -> schemas.Quote:
    """What ``POST /v1/purchases`` with this body would earn now (the same earning function, on the same
    facts), and the most points the member may pay for it. Nothing is written or counted: a first purchase
    stays a first purchase."""
    context = await _quote_context(db, body)
    if context.status != "active":
        raise MemberInactive(f"Member '{body.member_id}' is {context.status} and earns no points.")
    found = rules.parsed(context.rules_version)
    paid = Decimal(0)
    if found is None or body.points_paid is not None:
        async with db.read() as session:
            found = await rules.active_rules(session, context.rules_version)
            if body.points_paid is not None:
                paid = (await points_paid_value(session, body, stores))[1]
    earned = earning.earning_of(body, context, context, *found, paid)
    if rules.limits_of(found):  # what is left of the rules' limits, read and not counted
        async with db.read() as session:
            earned, _ = await limits.apply(session, earned, found, body.member_id, body.occurred_at,
                                           zone_of(context.time_zone), take=False)
    most = domain.redeemable_points(total=body.total, available=context.available, point_value=context.point_value,
                                    max_share=context.max_share, min_points=context.min_points)
    return schemas.Quote(
        member_id=body.member_id, points_earned=earned.points,
        breakdown=[schemas.BreakdownItem(rule_id=r, points=p) for r, p in earned.breakdown],
        balance=schemas.BalanceHeld(available=context.available, pending=context.pending, held=context.held),
        redeemable=schemas.Redeemable(points=most, value=domain.points_value(
            most, context.point_value, currency_decimals(context.currency))),
    )
