"""HTTP endpoints of the rewards service: parse, call a use case in one transaction, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from services.rewards import schemas
from services.rewards.errors import (
    LimitReached,
    OutOfStock,
    RewardNotFound,
    RewardUnavailable,
    TierTooLow,
    VoucherAlreadyUsed,
)
from services.rewards.service import catalog, redemptions, vouchers
from services.rewards.service.waiting import Settlements
from shared.errors import COMMON_ERRORS, Conflict, IdempotencyConflict, NotFound
from shared.http.auth import Admin, MembersRead, RedemptionsWrite, VouchersUse
from shared.http.pagination import Cursor, Limit, Page
from shared.http.problems import problem_responses
from shared.http.types import ID_PATTERN, PLAIN_DECIMAL, MemberIdPath
from shared.runtime import Db

router = APIRouter(prefix="/v1")

# The ids of the examples are those of the request bodies (reward cup, redemption web:r-4711 of member
# C-1001), so trying the operations in /docs in order works; a voucher code is the one a confirmed
# redemption shows.
RewardIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, examples=["cup"])]
RedemptionIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, examples=["web:r-4711"])]
VoucherCode = Annotated[str, Path(min_length=1, max_length=64, examples=["7KQ2M-X9TRB-4HWNC"],
                                  description="As printed (any case, dashes optional): the `voucher_code` of a "
                                              "confirmed redemption")]


async def settlements(request: Request) -> Settlements:
    found: Settlements = request.app.state.settlements
    return found


Waiters = Annotated[Settlements, Depends(settlements)]


# --- catalog ---------------------------------------------------------------------------------------


@router.get(
    "/rewards", tags=["rewards"], summary="The rewards catalog", response_model=Page[schemas.CatalogItem],
    responses=problem_responses(*COMMON_ERRORS),
)
async def list_rewards(
    db: Db, _: MembersRead, limit: Limit = 50, cursor: Cursor = None,
    member_id: Annotated[str | None, Query(min_length=1, max_length=64, pattern=ID_PATTERN, examples=["C-1001"],
                                           description="Mark each reward `eligible` for this member")] = None,
) -> Page[schemas.CatalogItem]:
    """Rewards by id; with `?member_id=` each is marked `eligible` or given the `reason` it is not."""
    async with db.read() as session:
        items, next_cursor = await catalog.catalog_page(session, limit, cursor, member_id)
    return Page[schemas.CatalogItem](items=items, next_cursor=next_cursor)


@router.put(
    "/rewards/{reward_id}", tags=["rewards"], summary="Create or change a reward",
    response_model=schemas.Reward, status_code=200,
    responses={201: {"model": schemas.Reward, "description": "Created"}, **problem_responses(*COMMON_ERRORS)},
)
async def put_reward(reward_id: RewardIdPath, body: schemas.RewardIn, db: Db, caller: Admin) -> JSONResponse:
    """Creates a reward (201) or replaces its terms (200); `stock_left` is the new `stock` less the units
    pending and confirmed redemptions hold."""
    async with db.transaction() as session:
        reward, created = await catalog.put_reward(session, reward_id, body, caller.name)
        answer = catalog.reward_out(reward)
    return JSONResponse(answer.model_dump(mode="json"), status_code=201 if created else 200)


@router.get(
    "/rewards/{reward_id}", tags=["rewards"], summary="A reward", response_model=schemas.Reward,
    responses=problem_responses(RewardNotFound, *COMMON_ERRORS),
)
async def get_reward(reward_id: RewardIdPath, db: Db, _: MembersRead) -> schemas.Reward:
    """A reward's terms and `stock_left` (null: unlimited)."""
    async with db.read() as session:
        return catalog.reward_out(await catalog.get_reward(session, reward_id))


# --- redemptions -----------------------------------------------------------------------------------


@router.post(
    "/redemptions", tags=["redemptions"], summary="Redeem a reward", status_code=202,
    response_model=schemas.Redemption,
    responses={
        202: {"model": schemas.Redemption, "description": "Accepted: pending until points answers"},
        200: {"model": schemas.Redemption, "description": "Replay of an earlier identical request"},
        **problem_responses(RewardNotFound, RewardUnavailable, TierTooLow, OutOfStock, LimitReached,
                            IdempotencyConflict, *COMMON_ERRORS),
    },
)
async def post_redemption(body: schemas.RedemptionIn, db: Db, caller: RedemptionsWrite) -> JSONResponse:
    """Reserves the stock and asks points for the points: `pending` (202) until `GET ...?wait=5` shows the
    outcome. A refusal leaves the id unused; a retry by the same key replays the first answer (200); the same
    id from another key is `409 idempotency-conflict`. The key that asks is recorded, and sees the voucher
    code of the redemption once confirmed, even without `vouchers:use`."""
    async with db.transaction() as session:
        answer, created = await redemptions.request_redemption(session, body, caller.name)
    return JSONResponse(answer, status_code=202 if created else 200)


@router.get(
    "/redemptions/{redemption_id}", tags=["redemptions"], summary="A redemption, optionally once settled",
    response_model=schemas.Redemption, responses=problem_responses(NotFound, *COMMON_ERRORS),
)
async def get_redemption(
    redemption_id: RedemptionIdPath, waiters: Waiters, caller: MembersRead,
    wait: Annotated[float, Query(ge=0, le=10, allow_inf_nan=False, examples=[5],
                                 description="Seconds to wait while it is `pending` (at most 10)"),
                  PLAIN_DECIMAL] = 0,
) -> schemas.Redemption:
    """The redemption; with `?wait=S` answered as soon as it is no longer `pending`, or after S seconds.
    `voucher_code` is shown to keys of the whole program with `vouchers:use` or `admin`, and to the key that
    asked for the redemption; to any other key it is null (a store-bound key sees only the codes of the
    redemptions it asked for, whatever its scopes)."""
    return redemptions.shown_to(await waiters.redemption(redemption_id, wait), caller)


@router.post(
    "/redemptions/{redemption_id}/cancel", tags=["redemptions"], summary="Cancel a confirmed redemption",
    response_model=schemas.Redemption,
    responses=problem_responses(NotFound, Conflict, VoucherAlreadyUsed, *COMMON_ERRORS),
)
async def cancel_redemption(redemption_id: RedemptionIdPath, db: Db, caller: RedemptionsWrite
                            ) -> schemas.Redemption:
    """Confirmed with an unused voucher: `cancelled`, stock and points come back (a goal's reward cost no
    points); a cancelled one is answered again as it is, anything else is 409. `voucher_code` is shown as in
    `GET /v1/redemptions/{redemption_id}`."""
    async with db.transaction() as session:
        cancelled = redemptions.redemption_out(await redemptions.cancel_redemption(session, redemption_id))
    return redemptions.shown_to(cancelled, caller)


@router.get(
    "/members/{member_id}/redemptions", tags=["redemptions"], summary="A member's redemptions, newest first",
    response_model=Page[schemas.Redemption], responses=problem_responses(*COMMON_ERRORS),
)
async def list_member_redemptions(member_id: MemberIdPath, db: Db, caller: MembersRead, limit: Limit = 50,
                                  cursor: Cursor = None) -> Page[schemas.Redemption]:
    """Pass `next_cursor` back as `cursor` for the next page; a goal's reward is among them (`source: goal`).
    `voucher_code` is shown as in `GET /v1/redemptions/{redemption_id}`: to a store-bound key only for the
    redemptions it asked for."""
    async with db.read() as session:
        items, next_cursor = await redemptions.member_redemptions_page(session, member_id, limit, cursor)
    return Page[schemas.Redemption](items=[redemptions.shown_to(r, caller) for r in items], next_cursor=next_cursor)


# --- vouchers --------------------------------------------------------------------------------------


@router.get(
    "/vouchers/{code}", tags=["vouchers"], summary="A voucher", response_model=schemas.Voucher,
    responses=problem_responses(NotFound, *COMMON_ERRORS),
)
async def get_voucher(code: VoucherCode, db: Db, _: VouchersUse) -> schemas.Voucher:
    """What a till checks before accepting a voucher (any key with `vouchers:use`, store-bound or not)."""
    async with db.read() as session:
        return vouchers.voucher_out(await vouchers.get_voucher(session, code))


@router.post(
    "/vouchers/{code}/use", tags=["vouchers"], summary="Use a voucher", response_model=schemas.Voucher,
    responses=problem_responses(NotFound, VoucherAlreadyUsed, Conflict, *COMMON_ERRORS),
)
async def use_voucher(code: VoucherCode, db: Db, caller: VouchersUse, body: schemas.VoucherUse | None = None
                      ) -> schemas.Voucher:
    """Marks the voucher used, exactly once: again (even at the same moment) is `409 voucher-already-used`.
    A store-bound key must give a `store_id` that is one of its stores (else `403 forbidden`, before the
    voucher is looked at)."""
    store_id = body.store_id if body is not None else None
    caller.check_store(store_id, "uses vouchers")
    async with db.transaction() as session:
        return vouchers.voucher_out(await vouchers.use_voucher(session, code, store_id))
