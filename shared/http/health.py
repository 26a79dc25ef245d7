"""/healthz (the process answers) and /readyz (the database answers; Kafka's absence only degrades)."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"]


class Readiness(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ready", "checks": {"database": "ok", "kafka": "ok"}},
        {"status": "degraded", "checks": {"database": "ok", "kafka": "unreachable"}}]})

    status: Literal["ready", "degraded", "unavailable"]
    checks: dict[str, str]


@router.get("/healthz", summary="Process is alive", response_model=Health)
async def healthz() -> Health:
    """Liveness: answers as long as the process runs; checks nothing else."""
    return Health(status="ok")


@router.get(
    "/readyz", summary="Ready to serve", response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database does not answer"}},
)
async def readyz(request: Request) -> JSONResponse:
    """200 when the database answers (``degraded`` while Kafka is away: writes still go to the outbox),
    503 ``unavailable`` when it does not."""
    runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        await runtime.db.ping()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    if runtime.relay is None:
        checks["kafka"] = "disabled"
    else:
        checks["kafka"] = "ok" if await runtime.relay.check_kafka() else "unreachable"
    if checks["database"] != "ok":
        status, code = "unavailable", 503
    elif checks["kafka"] not in ("ok", "disabled"):
        status, code = "degraded", 200
    else:
        status, code = "ready", 200
    return JSONResponse(Readiness(status=status, checks=checks).model_dump(), status_code=code)
