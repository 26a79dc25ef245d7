"""HTTP endpoints of a member's tier: where they stand, what the next tier needs, and how they got there."""

from __future__ import annotations

from fastapi import APIRouter

from services.tiers import schemas
from services.tiers.errors import MemberNotFound
from services.tiers.service import members
from shared.errors import COMMON_ERRORS
from shared.http.auth import MembersRead
from shared.http.pagination import Cursor, Limit, Page
from shared.http.problems import problem_responses
from shared.http.types import MemberIdPath
from shared.runtime import Db

router = APIRouter(prefix="/v1")


@router.get(
    "/members/{member_id}/tier", tags=["tiers"], summary="A member's tier and progress",
    response_model=schemas.MemberTier,
    responses=problem_responses(MemberNotFound, *COMMON_ERRORS),
)
async def get_member_tier(member_id: MemberIdPath, db: Db, _: MembersRead) -> schemas.MemberTier:
    """The member's tier, retention, qualifying value now and what the next tier needs."""
    async with db.read() as session:
        return await members.member_tier(session, member_id)


@router.get(
    "/members/{member_id}/tier/history", tags=["tiers"], summary="A member's tier changes, newest first",
    response_model=Page[schemas.HistoryEntry], responses=problem_responses(MemberNotFound, *COMMON_ERRORS),
)
async def get_tier_history(
    member_id: MemberIdPath, db: Db, _: MembersRead, limit: Limit = 50, cursor: Cursor = None
) -> Page[schemas.HistoryEntry]:
    """The member's tier changes, newest first; pass `next_cursor` back as `cursor`."""
    async with db.read() as session:
        items, next_cursor = await members.history_page(session, member_id, limit, cursor)
    return Page[schemas.HistoryEntry](items=items, next_cursor=next_cursor)
