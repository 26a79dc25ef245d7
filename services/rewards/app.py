"""The rewards service's app: ``uvicorn --factory services.rewards.app:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from services.rewards import consumers, jobs
from services.rewards.api import router
from services.rewards.models import Base
from services.rewards.service.waiting import Settlements
from services.rewards.settings import Settings
from shared.runtime import ServiceSpec, create_service_app


def start_settlements(app: FastAPI) -> None:
    app.state.settlements = Settlements(app.state.db)


SPEC = ServiceSpec(
    name="rewards",
    title="Loyalty rewards",
    description=(
        "The rewards catalog, redemptions (a saga with the points service) and voucher codes.\n\n"
        "How a redemption moves from `pending` to `confirmed`, `rejected` or `cancelled`, what each event "
        "does and what is guaranteed (stock never below zero, points taken at most once): "
        "`docs/redemptions.md` in the source repository."
    ),
    metadata=Base.metadata,
    routers=[router],
    consumes=consumers.TOPICS,
    handlers=consumers.HANDLERS,
    batch_handlers=consumers.BATCH_HANDLERS,
    # Asks points again for pending redemptions whose answer is overdue (REWARDS_REDEMPTION_RETRY_SECONDS).
    jobs=[(jobs.REASK_EVERY_SECONDS, jobs.reask_redemptions)],
    openapi_tags=[
        {"name": "rewards", "description": "The catalog: cost, stock, validity, tier gates, per-member limits"},
        {"name": "redemptions", "description": "Spending points on a reward: requested, then confirmed or rejected"},
        {"name": "vouchers", "description": "Codes of confirmed redemptions, checked and used at a till"},
        {"name": "operations", "description": "Health, readiness, metrics and the event contract (AsyncAPI)"},
    ],
    # Wakes `GET /v1/redemptions/{id}?wait=` when this process's consumer commits a settlement.
    on_start=[start_settlements],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings or Settings())
