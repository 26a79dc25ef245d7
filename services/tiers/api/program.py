"""HTTP endpoints of the tier program: read it, replace it (which evaluates every member at once)."""

from __future__ import annotations

from fastapi import APIRouter

from services.tiers import schemas
from services.tiers.service import program
from shared.errors import COMMON_ERRORS
from shared.http.auth import Admin, MembersRead
from shared.http.problems import problem_responses
from shared.runtime import Db

router = APIRouter(prefix="/v1")


@router.get(
    "/tiers", tags=["tiers"], summary="The tier program", response_model=schemas.TierProgram,
    responses=problem_responses(*COMMON_ERRORS),
)
async def get_tiers(db: Db, _: MembersRead) -> schemas.TierProgram:
    """The tier ladder, lowest first, and how members qualify (a default until one is set)."""
    async with db.read() as session:
        return await program.get_program(session)


@router.put(
    "/tiers", tags=["tiers"], summary="Replace the tier program", response_model=schemas.TierProgram,
    responses=problem_responses(*COMMON_ERRORS),
)
async def put_tiers(body: schemas.TierProgramIn, db: Db, principal: Admin) -> schemas.TierProgram:
    """Replace the ladder and evaluate every member now (downgrades wait for retention to end)."""
    async with db.transaction() as session:
        return await program.put_program(session, body, principal.name)
