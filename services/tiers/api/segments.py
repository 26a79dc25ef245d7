"""HTTP endpoints of segments and analytics: a member's segment, the program's summary, and the segmentation
run on demand."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.tiers import schemas
from services.tiers.errors import MemberNotFound
from services.tiers.service import segmentation
from services.tiers.settings import Settings
from shared.errors import COMMON_ERRORS
from shared.http.auth import Admin, MembersRead
from shared.http.problems import problem_responses
from shared.http.types import MemberIdPath
from shared.runtime import Db, runtime_of

router = APIRouter(prefix="/v1")


def _settings(request: Request) -> Settings:
    settings = runtime_of(request).settings
    assert isinstance(settings, Settings)
    return settings


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
        return await segmentation.member_segment(session, member_id, _settings(request).segment_params())


@router.get(
    "/analytics/summary", summary="Program analytics", response_model=schemas.AnalyticsSummary,
    tags=["analytics"], responses=problem_responses(*COMMON_ERRORS),
)
async def get_analytics_summary(db: Db, _: Admin) -> schemas.AnalyticsSummary:
    """Members by tier, status, value class and lifecycle (classes and lifecycles of members segmented by the
    last run), the Pareto share of that run and the points liability."""
    async with db.read() as session:
        return await segmentation.analytics_summary(session)


@router.post(
    "/jobs/segments", summary="Run the segmentation now", response_model=schemas.SegmentRunOut,
    tags=["operations"], responses=problem_responses(*COMMON_ERRORS),
)
async def run_segments(request: Request, db: Db, _: Admin) -> schemas.SegmentRunOut:
    """Segment every member now, as the 15-minute job does, announcing each change."""
    return await segmentation.recompute_segments(db, params=_settings(request).segment_params())
