"""Scheduled work of the tiers service: the hourly evaluation of members whose retention has ended, and the
segmentation run every 15 minutes."""

from __future__ import annotations

import logging
from datetime import timedelta

from services.tiers.service import members, segmentation
from services.tiers.settings import Settings
from shared.clock import utcnow
from shared.runtime import Runtime

log = logging.getLogger(__name__)

EVALUATE_EVERY_SECONDS = 3600.0
SEGMENTS_EVERY_SECONDS = 900.0


async def evaluate_tiers(runtime: Runtime) -> None:
    changed = await members.evaluate_all(runtime.db)
    if changed:
        log.info("tier evaluation: %d members changed tier", changed)


async def recompute_segments(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    last = await segmentation.last_segmented_at(runtime.db)
    if last is not None and utcnow() - last < timedelta(seconds=SEGMENTS_EVERY_SECONDS / 2):
        return  # another instance ran it lately
    run = await segmentation.recompute_segments(runtime.db, params=settings.segment_params())
    log.info("segments: %d members, %d scored, %d changed", run.members, run.scored, run.changed)
