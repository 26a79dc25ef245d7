"""HTTP endpoints of the points service: parse, call a use case in one transaction, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, ValidationError

from services.points import schemas
from services.points.errors import (
    CurrencyMismatch,
    HoldExpired,
    HoldNotActive,
    IdentifierTaken,
    InsufficientPoints,
    MemberInactive,
    MemberNotFound,
    ReferralInvalid,
    RefundExceedsPurchase,
)
from services.points.service import (
    AUDIT,
    balances,
    checkout,
    goals,
    identifiers,
    members,
    operators,
    program,
    purchases,
    reports,
    rules,
    search,
    simulation,
)
from shared.errors import COMMON_ERRORS, Forbidden, IdempotencyConflict, LoyaltyError, NotFound
from shared.http.auth import Admin, MembersRead, MembersWrite, PurchasesWrite, QuotesRead, RedemptionsWrite, Scope
from shared.http.pagination import Cursor, Limit, Page
from shared.http.problems import problem_responses
from shared.http.types import ID_PATTERN, MemberIdPath, storable_text
from shared.runtime import Db

router = APIRouter(prefix="/v1")

# The ids of the examples are those of the request bodies (member C-1001, purchase store-12:r-000123,
# rule double-grocery), so trying the operations in /docs in order works.
PurchaseIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, examples=["store-12:r-000123"])]
RuleIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, examples=["double-grocery"])]
RuleBody = Annotated[schemas.RuleIn, Body(openapi_examples=schemas.RULE_EXAMPLES)]


def written(answer: dict[str, Any], created: bool) -> JSONResponse:
    """201 for a new write, 200 for the replay of an identical earlier one."""
    return JSONResponse(answer, status_code=201 if created else 200)


def replay_responses(model: type, *errors: type[LoyaltyError]) -> dict[int | str, dict[str, Any]]:
    return {201: {"model": model, "description": "Created"},
            200: {"model": model, "description": "Replay of an earlier identical request"},
            **problem_responses(*errors, *COMMON_ERRORS)}


# --- members ---------------------------------------------------------------------------------------


@router.put(
    "/members/{member_id}", tags=["members"], summary="Enroll or update a member",
    response_model=schemas.Member, status_code=200,
    responses={201: {"model": schemas.Member, "description": "Enrolled"},
               **problem_responses(IdentifierTaken, ReferralInvalid, *COMMON_ERRORS)},
)
async def put_member(member_id: MemberIdPath, body: schemas.MemberIn, db: Db, caller: MembersWrite) -> JSONResponse:
    """Enroll a member (201) or update the fields given (200); the answer is the member, with its own
    `referral_code`. Changing `status` (active, suspended, closed) needs an `admin` key. To a store-bound key
    the answer's `email` and `phone` are null.

    Enrolling with another member's `referral_code` makes that member the referrer (`referred_by`); an
    unknown code, one's own, an inactive owner's, or one whose owner shares the new member's e-mail or phone
    is `422 referral-invalid`, and nothing is stored. The program's `referral` setting says what referring
    pays (docs/referrals.md)."""
    if body.status is not None and not caller.allows(Scope.ADMIN):
        raise Forbidden("Changing a member's status needs the 'admin' scope.")
    async with db.transaction() as session:
        member, created = await members.upsert_member(session, member_id, body)
        answer = members.member_out(member, contacts=caller.reads_contacts)
    return written(answer.model_dump(mode="json"), created)


@router.get(
    "/members/{member_id}", tags=["members"], summary="A member", response_model=schemas.Member,
    responses=problem_responses(MemberNotFound, *COMMON_ERRORS),
)
async def get_member(member_id: MemberIdPath, db: Db, caller: MembersRead) -> schemas.Member:
    """A member's profile, status and current tier. A store-bound key (one lent to a till or a shop) gets
    `email` and `phone` as null."""
    async with db.read() as session:
        return members.member_out(await members.get_member(session, member_id), contacts=caller.reads_contacts)


@router.get(
    "/members/{member_id}/balance", tags=["members"], summary="A member's balance",
    response_model=schemas.Balance, responses=problem_responses(MemberNotFound, *COMMON_ERRORS),
)
async def get_balance(member_id: MemberIdPath, db: Db, _: MembersRead) -> schemas.Balance:
    """Available and pending points, lifetime totals and what expires in the next 30 days."""
    return await balances.balance(db, member_id)


@router.get(
    "/members/{member_id}/goals", tags=["members"], summary="A member's progress towards the goals",
    response_model=schemas.MemberGoals, responses=problem_responses(MemberNotFound, *COMMON_ERRORS),
)
async def get_member_goals(member_id: MemberIdPath, db: Db, _: MembersRead) -> schemas.MemberGoals:
    """Each goal running for the member (in its audience, not held out): what counts so far in the current
    calendar period or on the current card, the target, and when the period ends. Periods are settled by
    the minute job once they have ended and their return window (`pending_days`) has passed."""
    async with db.read() as session:
        return await goals.member_goals(session, member_id)


@router.get(
    "/members/{member_id}/ledger", tags=["ledger"], summary="A member's ledger, newest first",
    response_model=Page[schemas.LedgerEntry], responses=problem_responses(MemberNotFound, *COMMON_ERRORS),
)
async def get_ledger(member_id: MemberIdPath, db: Db, _: MembersRead, limit: Limit = 50, cursor: Cursor = None
                     ) -> Page[schemas.LedgerEntry]:
    """Every change of the balance with the balance after it. Pass `next_cursor` back as `cursor` for the
    next page."""
    items, next_cursor = await balances.ledger_page(db, member_id, limit, cursor)
    return Page[schemas.LedgerEntry](items=items, next_cursor=next_cursor)


@router.post(
    "/members/{member_id}/adjustments", tags=["ledger"], summary="Adjust a member's points by hand",
    status_code=201, response_model=schemas.LedgerEntry,
    responses=replay_responses(schemas.LedgerEntry, MemberNotFound, InsufficientPoints, IdempotencyConflict),
)
async def post_adjustment(member_id: MemberIdPath, body: schemas.AdjustmentIn, db: Db, caller: Admin) -> JSONResponse:
    """Adds or removes points with a reason; the key's name is recorded as the actor. A removal cannot take
    the available balance below zero. Idempotent by `adjustment_id`."""
    async with db.transaction() as session:
        answer, created = await operators.adjust(session, member_id, body, caller.name)
        if created:
            await AUDIT.record(session, actor=caller.name, action="points.adjusted", resource=f"member:{member_id}",
                               after=answer)
    return written(answer, created)


@router.post(
    "/members/{member_id}/transfers", tags=["ledger"], summary="Transfer points to another member",
    status_code=201, response_model=schemas.TransferResult,
    responses=replay_responses(schemas.TransferResult, MemberNotFound, MemberInactive, InsufficientPoints,
                               IdempotencyConflict),
)
async def post_transfer(member_id: MemberIdPath, body: schemas.TransferIn, db: Db, caller: Admin) -> JSONResponse:
    """Moves available points in one transaction; the receiver's lots keep the sender's expiry dates
    (households pool points this way). Idempotent by `transfer_id`."""
    async with db.transaction() as session:
        answer, created = await operators.transfer(session, member_id, body, caller.name)
        if created:
            await AUDIT.record(session, actor=caller.name, action="points.transferred",
                               resource=f"member:{member_id}", after=answer)
    return written(answer, created)


# --- purchases -------------------------------------------------------------------------------------


@router.post(
    "/purchases", tags=["purchases"], summary="Record a purchase and credit its points",
    response_model=schemas.PurchaseResult, status_code=201,
    responses=replay_responses(schemas.PurchaseResult, MemberNotFound, MemberInactive, CurrencyMismatch,
                               IdempotencyConflict, HoldExpired, HoldNotActive),
)
async def post_purchase(body: schemas.PurchaseIn, db: Db, caller: PurchasesWrite) -> JSONResponse:
    """Credits the member in the same transaction that stores the purchase. Retrying with the same
    `purchase_id` and body replays the first answer (200); another body, or the same id from another key, is
    `409 idempotency-conflict`. A store-bound key must give a `store_id` that is one of its stores (else
    `403 forbidden`).

    At the checkout, `points_paid: {"hold_id"}` names the hold that paid part of the order: a hold still
    held is captured whole by this purchase, in its transaction; a captured one is linked. Unless the
    program's `redemption.earn_on_points_paid`, only the part paid in money earns. A hold that paid another
    purchase, or was voided, is `409 hold-not-active`; one whose time ran out, `409 hold-expired`.

    A referred member's first purchase of at least the program's `referral.min_spend` also credits both
    referral bonuses (`bonus` ledger entries, not in `points_earned`); the answer's `balance` includes the
    member's own."""
    caller.check_store(body.store_id, "posts purchases")
    async with db.transaction() as session:
        answer, created = await purchases.record_purchase(session, body, caller.name, caller.stores)
    return written(answer, created)


@router.post(
    "/purchases/batch", tags=["purchases"], summary="Record up to 1000 purchases, each answered alone",
    response_model=schemas.PurchaseBatchResult, responses=problem_responses(*COMMON_ERRORS),
)
async def post_purchase_batch(body: schemas.PurchaseBatchIn, db: Db, caller: PurchasesWrite
                              ) -> schemas.PurchaseBatchResult:
    """For tills catching up after being offline: each purchase is validated and recorded in its own
    transaction, so one bad item fails alone. Each result carries the status and body that
    `POST /v1/purchases` would have answered: for a store-bound key, an item without one of its stores as
    `store_id` is that item's `403 forbidden`."""
    results = []
    for index, item in enumerate(body.purchases):
        purchase_id = item.get("purchase_id") if isinstance(item.get("purchase_id"), str) else None
        try:
            purchase = schemas.PurchaseIn.model_validate(item)
        except ValidationError as exc:
            errors = [{"loc": ["body", "purchases", index, *[str(p) for p in e["loc"]]], "msg": e["msg"]}
                      for e in exc.errors()]
            results.append(schemas.BatchItemResult(purchase_id=purchase_id, status=422, body={
                "type": "/problems/validation-error", "title": "Request is not valid", "status": 422,
                "detail": f"{'.'.join(str(p) for p in errors[0]['loc'])}: {errors[0]['msg']}", "errors": errors}))
            continue
        try:
            caller.check_store(purchase.store_id, "posts purchases")
            async with db.transaction() as session:
                answer, created = await purchases.record_purchase(session, purchase, caller.name, caller.stores)
            results.append(schemas.BatchItemResult(purchase_id=purchase_id, status=201 if created else 200,
                                                   body=answer))
        except LoyaltyError as err:
            results.append(schemas.BatchItemResult(purchase_id=purchase_id, status=err.status, body={
                "type": f"/problems/{err.slug}", "title": err.title, "status": err.status, "detail": err.detail}))
    return schemas.PurchaseBatchResult(results=results)


@router.post(
    "/purchases/{purchase_id}/refunds", tags=["purchases"], summary="Refund part or all of a purchase",
    status_code=201, response_model=schemas.RefundResult,
    responses=replay_responses(schemas.RefundResult, NotFound, RefundExceedsPurchase, IdempotencyConflict),
)
async def post_refund(purchase_id: PurchaseIdPath, body: schemas.RefundIn, db: Db, caller: PurchasesWrite
                      ) -> JSONResponse:
    """Takes back the purchase's points in proportion to the amount (bonus points on a full refund).
    Several partial refunds may follow each other up to the purchase total. If the points were already
    spent the balance goes below zero and later earnings repay it. Idempotent by `refund_id` (per key: the
    same id from another key is `409 idempotency-conflict`). A store-bound key refunds only purchases of its
    stores: another store's purchase (or one without a store) is answered `404 not-found`, as an unknown one
    is, so that the key learns nothing of other stores' purchases. A full refund of the purchase that paid
    a referral takes back both sides' referral bonuses too (not counted in `points_reversed`)."""
    async with db.transaction() as session:
        answer, created = await purchases.record_refund(session, purchase_id, body, caller.name, caller.stores)
    return written(answer, created)


# --- program and rules -----------------------------------------------------------------------------


@router.get(
    "/program", tags=["rules"], summary="Program settings", response_model=schemas.Program,
    responses=problem_responses(*COMMON_ERRORS),
)
async def get_program(db: Db, _: MembersRead) -> schemas.Program:
    """Currency, base earning rate, expiry and pending days, excluded categories."""
    async with db.transaction() as session:
        return program.program_out(await program.get_program(session))


@router.put(
    "/program", tags=["rules"], summary="Change program settings", response_model=schemas.Program,
    responses=problem_responses(*COMMON_ERRORS),
)
async def put_program(body: schemas.ProgramIn, db: Db, caller: Admin) -> schemas.Program:
    """Applies to purchases recorded from now on."""
    async with db.transaction() as session:
        before = program.program_out(await program.get_program(session, for_update=True))
        after = program.program_out(await program.put_program(session, body))
        await AUDIT.record(session, actor=caller.name, action="program.changed", resource="program", before=before,
                           after=after)
        return after


@router.get(
    "/earning-rules", tags=["rules"], summary="Earning rules", response_model=Page[schemas.Rule],
    responses=problem_responses(*COMMON_ERRORS),
)
async def list_rules(db: Db, _: Admin, limit: Limit = 50, cursor: Cursor = None) -> Page[schemas.Rule]:
    """Rules in force or scheduled, by rule id."""
    async with db.read() as session:
        rows, next_cursor = await rules.list_rules(session, limit, cursor)
        items = await rules.rules_out(session, rows)
    return Page[schemas.Rule](items=items, next_cursor=next_cursor)


@router.post(
    "/earning-rules", tags=["rules"], summary="Create an earning rule", status_code=201,
    response_model=schemas.Rule, responses=replay_responses(schemas.Rule, IdempotencyConflict),
)
async def post_rule(body: RuleBody, db: Db, caller: Admin) -> JSONResponse:
    """A `multiplier` (a promotion on the categories, SKUs, stores or channels it matches) or a `bonus`
    (`first_purchase`, `enrollment`, `birthday_month`, `referral`, `min_spend`). It applies to purchases whose
    `occurred_at` falls in its window. Rule ids are never reused."""
    async with db.transaction() as session:
        answer, created = await rules.create_rule(session, body, caller.name)
        if created:
            await AUDIT.record(session, actor=caller.name, action="rule.created",
                               resource=f"earning-rule:{body.rule_id}", after=answer)
    return written(answer, created)


# Before the routes of /earning-rules/{rule_id}, so that "simulate" is never read as a rule id.
@router.post(
    "/earning-rules/simulate", tags=["rules"], summary="Simulate rule changes on the purchases of a range",
    response_model=schemas.Simulation, responses=problem_responses(*COMMON_ERRORS),
)
async def simulate_rules(body: Annotated[schemas.SimulationIn, Body(openapi_examples={"change": {
                             "summary": "Triple groceries, a basket bonus, no win-back, over October",
                             "value": schemas.SIMULATION_EXAMPLE}})], db: Db, _: Admin) -> schemas.Simulation:
    """Replays the purchases whose `occurred_at` is in [`from`, `to`) (at most 366 days), in the order they
    were recorded, through today's rules and through today's with the body's changes (`rules` added or
    replacing the stored rule of their id, `remove`d ids taken out), with the same earning function as a
    purchase, and answers the points each set gives, by rule, and what the difference is worth. Nothing is
    written or counted: budgets, first purchases and birthdays stay as they are.

    Today's program and member facts are used (tier multiplier, tier, value class, lifecycle, enrolment);
    each rule's limits are counted from zero at `from`, in replay order; a birthday bonus is given once per
    member and year within the replay; goal rules are not replayed (`skipped`). Unknown `remove` ids, a
    replacement of another kind, a reversed or longer range are `422 validation-error` (docs/simulation.md)."""
    return await simulation.simulate(db, body)


@router.get(
    "/earning-rules/{rule_id}", tags=["rules"], summary="An earning rule", response_model=schemas.Rule,
    responses=problem_responses(NotFound, *COMMON_ERRORS),
)
async def get_rule(rule_id: RuleIdPath, db: Db, _: Admin) -> schemas.Rule:
    """One earning rule as stored, with what its budget has given (`budget_used`) and whether it is used up."""
    async with db.read() as session:
        return (await rules.rules_out(session, [await rules.get_rule(session, rule_id)]))[0]


@router.get(
    "/earning-rules/{rule_id}/report", tags=["rules"], summary="Did the rule work? Its holdout report",
    response_model=schemas.HoldoutReport, responses=problem_responses(NotFound, *COMMON_ERRORS),
)
async def get_rule_report(rule_id: RuleIdPath, db: Db, _: Admin) -> schemas.HoldoutReport:
    """Treated and control members of a rule with `holdout_pct` over its window (`valid_from`, or its
    creation, to `valid_until` or now): their members, purchases, spend net of refunds and points, and how
    much more a treated member spent than a control member, with a 95% interval. The groups hold the members
    the rule's audience admits now and those it took in at a purchase, so members who bought nothing count
    with 0. A rule without a holdout has no control group, and no uplift. The method is in docs/campaigns.md."""
    async with db.read() as session:
        return await reports.holdout_report(session, rule_id)


@router.post(
    "/jobs/goals", tags=["operations"], summary="Settle the goals now", response_model=schemas.GoalRun,
    responses=problem_responses(*COMMON_ERRORS),
)
async def run_goals(db: Db, _: Admin) -> schemas.GoalRun:
    """Settle what the minute job would: calendar periods whose return window has passed, and stamp cards
    filled. Safe to repeat (each member's period is settled once); answers how many goals were reached."""
    return schemas.GoalRun(reached=await goals.settle_goals(db))


@router.patch(
    "/earning-rules/{rule_id}", tags=["rules"], summary="Change an earning rule", response_model=schemas.Rule,
    responses=problem_responses(NotFound, *COMMON_ERRORS),
)
async def patch_rule(rule_id: RuleIdPath, body: schemas.RulePatch, db: Db, caller: Admin) -> schemas.Rule:
    """Changes the fields given; the rule must still be valid as a whole. Points already earned stay."""
    async with db.transaction() as session:
        (before,) = await rules.rules_out(session, [await rules.get_rule(session, rule_id, for_update=True)])
        (after,) = await rules.rules_out(session, [await rules.patch_rule(session, rule_id, body)])
        await AUDIT.record(session, actor=caller.name, action="rule.updated", resource=f"earning-rule:{rule_id}",
                           before=before, after=after)
        return after


@router.delete(
    "/earning-rules/{rule_id}", tags=["rules"], summary="Delete an earning rule", status_code=204,
    response_class=Response, responses=problem_responses(NotFound, *COMMON_ERRORS),
)
async def delete_rule(rule_id: RuleIdPath, db: Db, caller: Admin) -> Response:
    """The rule stops applying; points already earned with it are not changed."""
    async with db.transaction() as session:
        (before,) = await rules.rules_out(session, [await rules.get_rule(session, rule_id, for_update=True)])
        await rules.delete_rule(session, rule_id)
        await AUDIT.record(session, actor=caller.name, action="rule.deleted", resource=f"earning-rule:{rule_id}",
                           before=before)
    return Response(status_code=204)


# --- finding a member ------------------------------------------------------------------------------
# A router of its own, included before the one above, so /v1/members/lookup is never read as a member id.

finding = APIRouter(prefix="/v1")

KindPath = Annotated[schemas.IdentifierKind, Path(description="card, phone, email or external",
                                                  examples=["card"])]
ValuePath = Annotated[str, Path(min_length=1, max_length=254, examples=["6012-0001"],
                                description="A phone compares by its digits, an e-mail case-insensitively")]
SearchText = Annotated[str | None, AfterValidator(lambda v: v if v is None else storable_text(v))]


@finding.put(
    "/members/{member_id}/identifiers/{kind}/{value}", tags=["members"], summary="Give a member an identifier",
    status_code=201, response_model=schemas.Identifier,
    responses={201: {"model": schemas.Identifier, "description": "Given"},
               200: {"model": schemas.Identifier, "description": "The member already holds it"},
               **problem_responses(MemberNotFound, IdentifierTaken, *COMMON_ERRORS)},
)
async def put_identifier(member_id: MemberIdPath, kind: KindPath, value: ValuePath, db: Db, _: MembersWrite
                         ) -> JSONResponse:
    """A card, phone, e-mail or external id the member is found by (201, or 200 when already theirs); one
    held by another member is `409 identifier-taken`. Phones compare by their digits, e-mails
    case-insensitively, cards and external ids as given (trimmed)."""
    async with db.transaction() as session:
        created = await identifiers.put_identifier(session, member_id, kind, value)
    return written({"kind": kind, "value": value.strip()}, created)


@finding.delete(
    "/members/{member_id}/identifiers/{kind}/{value}", tags=["members"], summary="Take an identifier from a member",
    status_code=204, response_class=Response, responses=problem_responses(*COMMON_ERRORS),
)
async def delete_identifier(member_id: MemberIdPath, kind: KindPath, value: ValuePath, db: Db, _: MembersWrite
                            ) -> Response:
    """The member is no longer found by it (also 204 when they did not hold it). Deleting the mirror of the
    profile's e-mail or phone leaves the profile as it is."""
    async with db.transaction() as session:
        await identifiers.delete_identifier(session, member_id, kind, value)
    return Response(status_code=204)


@finding.get(
    "/members/lookup", tags=["members"], summary="Find a member by an identifier",
    response_model=schemas.MemberFound, responses=problem_responses(MemberNotFound, *COMMON_ERRORS),
)
async def lookup_member(db: Db, caller: MembersRead,
                        kind: Annotated[schemas.IdentifierKind, Query(examples=["card"])],
                        value: Annotated[str, Query(min_length=1, max_length=254, examples=["6012-0001"]),
                                         AfterValidator(storable_text)]) -> schemas.MemberFound:
    """The member holding a card, phone, e-mail or external id (the profile's own e-mail and phone are
    identifiers too), with all their identifiers; none holds it: `404 member-not-found`. A key lent to a store
    finds members by a phone or an e-mail too, but reads neither back: contacts and those identifiers are left
    out of its answer."""
    async with db.read() as session:
        return await identifiers.lookup(session, kind, value, contacts=caller.reads_contacts)


@finding.get(
    "/members", tags=["members"], summary="Search members", response_model=Page[schemas.MemberListed],
    responses=problem_responses(*COMMON_ERRORS),
)
async def search_members(
    db: Db, _: Admin, limit: Limit = 50, cursor: Cursor = None,
    q: Annotated[SearchText, Query(max_length=254, description="A prefix of the id, name, e-mail, phone or an "
                                   "identifier, case-insensitive", examples=["ada"])] = None,
    status: schemas.MemberStatus | None = None,
    tier: Annotated[SearchText, Query(max_length=64)] = None,
    value_class: schemas.ValueClass | None = None,
    lifecycle: schemas.Lifecycle | None = None,
) -> Page[schemas.MemberListed]:
    """Members by id, for operators: `q` matches by prefix, the filters combine. Pass `next_cursor` back as
    `cursor` for the next page."""
    async with db.read() as session:
        items, next_cursor = await search.search(session, q=q, status=status, tier=tier, value_class=value_class,
                                                 lifecycle=lifecycle, limit=limit, cursor=cursor)
    return Page[schemas.MemberListed](items=items, next_cursor=next_cursor)


# --- the checkout ----------------------------------------------------------------------------------
# One story in /docs, in the order a till meets it: quote the basket, hold points, post the purchase with
# points_paid (which captures the hold), capture (a repeat answers the same) or void.

HoldIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, examples=["store-12:h-000123"])]
CHECKOUT = "checkout"


@router.post(
    "/quotes", tags=[CHECKOUT], summary="1. Quote a basket: points it earns, points that may pay it",
    response_model=schemas.Quote,
    responses=problem_responses(MemberNotFound, MemberInactive, CurrencyMismatch, HoldExpired, HoldNotActive,
                                *COMMON_ERRORS),
)
async def post_quote(body: schemas.QuoteIn, db: Db, caller: QuotesRead) -> schemas.Quote:
    """A purchase body without `purchase_id`: what `POST /v1/purchases` would earn for it now, line by line
    and rule by rule (the same earning function), the member's balance, and `redeemable`: the most points
    the member may pay for it (available, within the program's `redemption.max_share` of the total; 0
    below its `min_points`) and their value. Nothing is written or counted: a first purchase stays first.
    A store-bound key quotes for its stores (`store_id`) only."""
    caller.check_store(body.store_id, "quotes")
    return await checkout.quote(db, body, caller.stores)


@router.post(
    "/holds", tags=[CHECKOUT], summary="2. Hold points for an order", status_code=201,
    response_model=schemas.Hold,
    responses=replay_responses(schemas.Hold, MemberNotFound, MemberInactive, InsufficientPoints, CurrencyMismatch,
                               IdempotencyConflict),
)
async def post_hold(body: schemas.HoldIn, db: Db, caller: RedemptionsWrite) -> JSONResponse:
    """Sets `points` aside: out of `available` (shown as `held`) until the hold is captured, voided, or
    `expires_at` passes (the program's `redemption.hold_minutes`; then they come back by themselves). Two
    holds never take the same points. Not enough available: `422 insufficient-points`; worth more than the
    program's `max_share` of `order_total`, or fewer than its `min_points`: `422 validation-error`.
    Idempotent by `hold_id`. A store-bound key must give one of its stores as `store_id`."""
    caller.check_store(body.store_id, "holds points")
    async with db.transaction() as session:
        answer, created = await checkout.create_hold(session, body, caller.name)
    return written(answer, created)


@router.post(
    "/holds/{hold_id}/capture", tags=[CHECKOUT], summary="4. Capture a hold: spend its points",
    response_model=schemas.Hold,
    responses=problem_responses(NotFound, HoldExpired, HoldNotActive, IdempotencyConflict, *COMMON_ERRORS),
)
async def capture_hold(hold_id: HoldIdPath, db: Db, caller: RedemptionsWrite,
                       body: Annotated[schemas.CaptureIn | None, Body()] = None) -> JSONResponse:
    """Spends the held points, all of them or `points` (the rest goes back), as a `spend` ledger entry with
    the `hold_id`. A repeat answers as the first capture did (also after a purchase with `points_paid`
    captured it); a capture of other points is `409 idempotency-conflict`. Voided: `409 hold-not-active`;
    past `expires_at`: `409 hold-expired`. A store-bound key sees only holds of its stores."""
    body = body or schemas.CaptureIn()
    ended = await checkout.ended(db, hold_id, caller.stores)
    if ended is not None:
        return JSONResponse(checkout.repeat_capture(ended, body))
    async with db.transaction() as session:
        answer = await checkout.capture(session, hold_id, body, caller.stores)
    return JSONResponse(answer)


@router.post(
    "/holds/{hold_id}/void", tags=[CHECKOUT], summary="Void a hold: its points go back",
    response_model=schemas.Hold,
    responses=problem_responses(NotFound, HoldExpired, HoldNotActive, *COMMON_ERRORS),
)
async def void_hold(hold_id: HoldIdPath, db: Db, caller: RedemptionsWrite) -> JSONResponse:
    """Gives every held point back, each to the lot it came from (with its own expiry date). A repeat
    answers as the first void did. Captured: `409 hold-not-active`; past `expires_at`: `409 hold-expired`
    (its points came back by themselves)."""
    ended = await checkout.ended(db, hold_id, caller.stores)
    if ended is not None:
        return JSONResponse(checkout.repeat_void(ended))
    async with db.transaction() as session:
        answer = await checkout.void(session, hold_id, caller.stores)
    return JSONResponse(answer)


@router.get(
    "/holds/{hold_id}", tags=[CHECKOUT], summary="A hold", response_model=schemas.Hold,
    responses=problem_responses(NotFound, *COMMON_ERRORS),
)
async def get_hold(hold_id: HoldIdPath, db: Db, caller: MembersRead) -> JSONResponse:
    """The hold as of now (one past `expires_at` is `expired`, its points back), with the member's balance."""
    async with db.transaction() as session:
        answer = await checkout.get_hold(session, hold_id, caller.stores)
    return JSONResponse(answer)
