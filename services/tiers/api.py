"""HTTP endpoints of the tiers service: parse, call a use case, shape the answer."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.tiers import schemas, service
from services.tiers.errors import MemberNotFound
from services.tiers.settings import Settings
from shared.errors import COMMON_ERRORS
from shared.http.auth import Admin, MembersRead
from shared.http.pagination import Cursor, Limit, Page
from shared.http.problems import problem_responses
from shared.http.types import MemberIdPath
from shared.runtime import Db, runtime_of

router = APIRouter(prefix="/v1")


def _settings(request: Request) -> Settings:
    settings = runtime_of(request).settings
    assert isinstance(settings, Settings)
    return settings


@router.get(
    "/tiers", tags=["tiers"], summary="The tier program", response_model=schemas.TierProgram,
    responses=problem_responses(*COMMON_ERRORS),
)
async def get_tiers(db: Db, _: MembersRead) -> schemas.TierProgram:
    """The tier ladder, lowest first, and how members qualify (a default until one is set)."""
    async with db.read() as session:
        return await service.get_program(session)


@router.put(
    "/tiers", tags=["tiers"], summary="Replace the tier program", response_model=schemas.TierProgram,
    responses=problem_responses(*COMMON_ERRORS),
)
async def put_tiers(body: schemas.TierProgramIn, db: Db, principal: Admin) -> schemas.TierProgram:
    """Replace the ladder and evaluate every member now (downgrades wait for retention to end)."""
    async with db.transaction() as session:
        return await service.put_program(session, body, principal.name)


@router.get(
    "/members/{member_id}/tier", tags=["tiers"], summary="A member's tier and progress",
    response_model=schemas.MemberTier,
    responses=problem_responses(MemberNotFound, *COMMON_ERRORS),
)
async def get_member_tier(member_id: MemberIdPath, db: Db, _: MembersRead) -> schemas.MemberTier:
    """The member's tier, retention, qualifying value now and what the next tier needs."""
    async with db.read() as session:
        return await service.member_tier(session, member_id)


@router.get(
    "/members/{member_id}/tier/history", tags=["tiers"], summary="A member's tier changes, newest first",
    response_model=Page[schemas.HistoryEntry], responses=problem_responses(MemberNotFound, *COMMON_ERRORS),
)
async def get_tier_history(
    member_id: MemberIdPath, db: Db, _: MembersRead, limit: Limit = 50, cursor: Cursor = None
) -> Page[schemas.HistoryEntry]:
    """The member's tier changes, newest first; pass `next_cursor` back as `cursor`."""
    async with db.read() as session:
        items, next_cursor = await service.history_page(session, member_id, limit, cursor)
    return Page[schemas.HistoryEntry](items=items, next_cursor=next_cursor)


# --- segments and analytics -------------------------------------------------------------------------


@router.get(
    "/members/{member_id}/segment", summary="A member's segment", response_model=schemas.MemberSegment,
    tags=["segments"], responses=problem_responses(MemberNotFound, *COMMON_ERRORS),
)
async def get_member_segment(
    member_id: MemberIdPath, request: Request, db: Db, _: MembersRead
) -> schemas.MemberSegment:
    """RFM scores, value class, lifecycle and CLV as the last segmentation run (every 15 minutes) left them;
    a purchase moves the lifecycle at once. Before the member's first run: RFM 1 and class D, with lifecycle
    and CLV computed for this answer from the member's own purchases (`computed_at` null)."""
    async with db.read() as session:
        return await service.member_segment(session, member_id, _settings(request).segment_params())


@router.get(
    "/analytics/summary", summary="Program analytics", response_model=schemas.AnalyticsSummary,
    tags=["analytics"], responses=problem_responses(*COMMON_ERRORS),
)
async def get_analytics_summary(db: Db, _: Admin) -> schemas.AnalyticsSummary:
    """Members by tier, status, value class and lifecycle (classes and lifecycles of members segmented by the
    last run), the Pareto share of that run and the points liability."""
    async with db.read() as session:
        return await service.analytics_summary(session)


@router.post(
    "/jobs/segments", summary="Run the segmentation now", response_model=schemas.SegmentRunOut,
    tags=["operations"], responses=problem_responses(*COMMON_ERRORS),
)
async def run_segments(request: Request, db: Db, _: Admin) -> schemas.SegmentRunOut:
    """Segment every member now, as the 15-minute job does, announcing each change."""
    return await service.recompute_segments(db, params=_settings(request).segment_params())
