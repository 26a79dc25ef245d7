"""``GET /v1/audit``, the same in every service: its audit trail (``shared.audit``), for admin keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AfterValidator

from shared.audit import TABLE, AuditEntry, audit_page
from shared.errors import COMMON_ERRORS
from shared.http.auth import Admin
from shared.http.pagination import Cursor, Limit, Page
from shared.http.problems import problem_responses
from shared.http.types import Timestamp, storable_text

Exact = Annotated[str | None, Query(min_length=1, max_length=200),
                  AfterValidator(lambda v: v if v is None else storable_text(v))]

router = APIRouter(prefix="/v1")


@router.get("/audit", tags=["operations"], summary="Who changed what: the audit trail",
            response_model=Page[AuditEntry], responses=problem_responses(*COMMON_ERRORS))
async def get_audit(request: Request, _: Admin, resource: Exact = None, actor: Exact = None,
                    since: Annotated[Timestamp | None, Query(description="Entries at or after this moment")] = None,
                    limit: Limit = 50, cursor: Cursor = None) -> Page[AuditEntry]:
    """Every change of this service's configuration (and its adjustments and transfers), newest first, with
    the key that made it and the resource before and after. `resource` and `actor` pick exact values
    (`earning-rule:double-groceries`, `marketing-lead`)."""
    runtime = request.app.state.runtime
    async with runtime.db.read() as session:
        return await audit_page(session, runtime.spec.metadata.tables[TABLE], resource=resource, actor=actor,
                                since=since, limit=limit, cursor=cursor)
