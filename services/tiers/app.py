"""The tiers service's app: ``uvicorn --factory services.tiers.app:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from services.tiers import consumers, jobs
from services.tiers.api import ROUTERS
from services.tiers.models import Base
from services.tiers.settings import Settings
from shared.runtime import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="tiers",
    title="Loyalty tiers",
    description=(
        "Tier definitions, each member's tier and qualification progress; customer segments (RFM scores, value "
        "classes, lifecycle, CLV) and program analytics. How segments are computed (quintiles and their ties, "
        "class boundaries, lifecycle rules, the CLV model) is explained in `docs/segments.md` of the repository."
    ),
    metadata=Base.metadata,
    routers=ROUTERS,
    consumes=consumers.TOPICS,
    handlers=consumers.HANDLERS,
    batch_handlers=consumers.BATCH_HANDLERS,
    jobs=[(jobs.EVALUATE_EVERY_SECONDS, jobs.evaluate_tiers), (jobs.SEGMENTS_EVERY_SECONDS, jobs.recompute_segments)],
    openapi_tags=[
        {"name": "tiers", "description": "The tier program, members' tiers, progress and history"},
        {"name": "segments", "description": "Customer segments: RFM scores, value classes, lifecycle, CLV"},
        {"name": "analytics", "description": "The operator dashboard: a read-only HTML page of the program's figures "
                                             "and charts (admin key, asked for with a Basic challenge)"},
        {"name": "operations", "description": "Health, readiness, metrics, the event contract (AsyncAPI) and "
                                              "scheduled jobs run on demand"},
    ],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings or Settings())
