"""Scheduled work of the tiers service: the hourly evaluation of members whose retention has ended."""

from __future__ import annotations

import logging

from services.tiers import service
from shared.runtime import Runtime

log = logging.getLogger(__name__)

EVALUATE_EVERY_SECONDS = 3600.0


async def evaluate_tiers(runtime: Runtime) -> None:
    changed = await service.evaluate_all(runtime.db)
    if changed:
        log.info("tier evaluation: %d members changed tier", changed)
