"""The points service's app: ``uvicorn --factory services.points.app:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from services.points import consumers, jobs
from services.points.api import finding, router
from services.points.models import Base
from services.points.settings import Settings
from shared.runtime import ServiceSpec, create_service_app

SPEC = ServiceSpec(
    name="points",
    title="Loyalty points",
    description="Members, purchases and refunds, the points ledger and balances.",
    metadata=Base.metadata,
    routers=[finding, router],  # finding first: /v1/members/lookup is not a member id
    consumes=consumers.TOPICS,
    handlers=consumers.HANDLERS,
    batch_handlers=consumers.BATCH_HANDLERS,
    jobs=[(60.0, jobs.expire_points)],
    openapi_tags=[
        {"name": "members", "description": "Enrolment, profiles and balances"},
        {"name": "purchases", "description": "Purchases and refunds: points earned and taken back"},
        {"name": "ledger", "description": "Every change of a balance; adjustments and transfers"},
        {"name": "rules", "description": "Program settings and earning rules"},
        {"name": "operations", "description": "Health, readiness, metrics and the event contract (AsyncAPI)"},
    ],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings or Settings())
