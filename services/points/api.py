"""HTTP endpoints of the points service: parse, call a use case, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse

from services.points import schemas, service
from shared.auth import Principal, Scope, require
from shared.db import Database
from shared.errors import (
    CurrencyMismatch,
    Forbidden,
    IdempotencyConflict,
    InvalidRequest,
    MemberInactive,
    MemberNotFound,
    Unauthorized,
    problem_responses,
)
from shared.runtime import database
from shared.types import ID_PATTERN

router = APIRouter(prefix="/v1")

Db = Annotated[Database, Depends(database)]
MemberId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, examples=["C-1001"])]
AUTH_ERRORS = (Unauthorized, Forbidden, InvalidRequest)



MembersRead = Annotated[Principal, Depends(require(Scope.MEMBERS_READ))]
MembersWrite = Annotated[Principal, Depends(require(Scope.MEMBERS_WRITE))]
PurchasesWrite = Annotated[Principal, Depends(require(Scope.PURCHASES_WRITE))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]


@router.put(
    "/members/{member_id}", tags=["members"], summary="Enroll or update a member",
    response_model=schemas.Member, status_code=200,
    responses={201: {"model": schemas.Member, "description": "Enrolled"}, **problem_responses(*AUTH_ERRORS)},
)
async def put_member(member_id: MemberId, body: schemas.MemberIn, db: Db, _: MembersWrite) -> JSONResponse:
    """Enroll a member (201) or update the fields given (200). Scope: `members:write`."""
    async with db.transaction() as session:
        member, created = await service.upsert_member(session, member_id, body)
        answer = service.member_out(member)
    return JSONResponse(answer.model_dump(mode="json"), status_code=201 if created else 200)


@router.get(
    "/members/{member_id}", tags=["members"], summary="A member", response_model=schemas.Member,
    responses=problem_responses(MemberNotFound, *AUTH_ERRORS),
)
async def get_member(member_id: MemberId, db: Db, _: MembersRead) -> schemas.Member:
    """A member's profile, status and current tier. Scope: `members:read`."""
    async with db.read() as session:
        return service.member_out(await service.get_member(session, member_id))


@router.get(
    "/members/{member_id}/balance", tags=["members"], summary="A member's balance",
    response_model=schemas.Balance, responses=problem_responses(MemberNotFound, *AUTH_ERRORS),
)
async def get_balance(member_id: MemberId, db: Db, _: MembersRead) -> schemas.Balance:
    """Available and pending points, lifetime totals and what expires in the next 30 days.
    Scope: `members:read`."""
    async with db.read() as session:
        return await service.balance_of(session, member_id)


@router.post(
    "/purchases", tags=["purchases"], summary="Record a purchase and credit its points",
    response_model=schemas.PurchaseResult, status_code=201,
    responses={200: {"model": schemas.PurchaseResult, "description": "Replay of an earlier identical request"},
               **problem_responses(MemberNotFound, MemberInactive, CurrencyMismatch, IdempotencyConflict,
                                   *AUTH_ERRORS)},
)
async def post_purchase(body: schemas.PurchaseIn, db: Db, _: PurchasesWrite) -> JSONResponse:
    """Credits the member in the same transaction that stores the purchase. Retrying with the same
    `purchase_id` and body replays the first answer (200); another body is `409 idempotency-conflict`.
    Scope: `purchases:write`."""
    async with db.transaction() as session:
        answer, created = await service.record_purchase(session, body)
    return JSONResponse(answer, status_code=201 if created else 200)


@router.get(
    "/program", tags=["rules"], summary="Program settings", response_model=schemas.Program,
    responses=problem_responses(*AUTH_ERRORS),
)
async def get_program(db: Db, _: MembersRead) -> schemas.Program:
    """Currency, base earning rate, expiry and pending days, excluded categories. Scope: `members:read`."""
    async with db.transaction() as session:
        return schemas.Program.model_validate(await service.get_program(session), from_attributes=True)


@router.put(
    "/program", tags=["rules"], summary="Change program settings", response_model=schemas.Program,
    responses=problem_responses(*AUTH_ERRORS),
)
async def put_program(body: schemas.ProgramIn, db: Db, _: Admin) -> schemas.Program:
    """Applies to purchases recorded from now on. Scope: `admin`."""
    async with db.transaction() as session:
        return schemas.Program.model_validate(await service.put_program(session, body), from_attributes=True)
