"""HTTP endpoints of the tiers service: parse, call a use case, shape the answer."""

from __future__ import annotations

from fastapi import APIRouter

from services.tiers import schemas, service
from shared.auth import Admin, MembersRead
from shared.errors import AUTH_ERRORS, MemberNotFound, problem_responses
from shared.pagination import Cursor, Limit, Page
from shared.runtime import Db
from shared.types import MemberIdPath

router = APIRouter(prefix="/v1", tags=["tiers"])




@router.get(
    "/tiers", summary="The tier program", response_model=schemas.TierProgram,
    responses=problem_responses(*AUTH_ERRORS),
)
async def get_tiers(db: Db, _: MembersRead) -> schemas.TierProgram:
    """The tier ladder, lowest first, and how members qualify (a default until one is set). Scope: `members:read`."""
    async with db.read() as session:
        return await service.get_program(session)


@router.put(
    "/tiers", summary="Replace the tier program", response_model=schemas.TierProgram,
    responses=problem_responses(*AUTH_ERRORS),
)
async def put_tiers(body: schemas.TierProgramIn, db: Db, principal: Admin) -> schemas.TierProgram:
    """Replace the ladder and evaluate every member now (downgrades wait for retention to end). Scope: `admin`."""
    async with db.transaction() as session:
        return await service.put_program(session, body, principal.name)


@router.get(
    "/members/{member_id}/tier", summary="A member's tier and progress", response_model=schemas.MemberTier,
    responses=problem_responses(MemberNotFound, *AUTH_ERRORS),
)
async def get_member_tier(member_id: MemberIdPath, db: Db, _: MembersRead) -> schemas.MemberTier:
    """The member's tier, retention, qualifying value now and what the next tier needs. Scope: `members:read`."""
    async with db.read() as session:
        return await service.member_tier(session, member_id)


@router.get(
    "/members/{member_id}/tier/history", summary="A member's tier changes, newest first",
    response_model=Page[schemas.HistoryEntry], responses=problem_responses(MemberNotFound, *AUTH_ERRORS),
)
async def get_tier_history(
    member_id: MemberIdPath, db: Db, _: MembersRead, limit: Limit = 50, cursor: Cursor = None
) -> Page[schemas.HistoryEntry]:
    """The member's tier changes, newest first; pass `next_cursor` back as `cursor`. Scope: `members:read`."""
    async with db.read() as session:
        items, next_cursor = await service.history_page(session, member_id, limit, cursor)
    return Page[schemas.HistoryEntry](items=items, next_cursor=next_cursor)
