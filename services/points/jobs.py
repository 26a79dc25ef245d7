"""Scheduled work of the points service, also run on demand by `loyalty jobs expire-points`."""

from __future__ import annotations

import logging

from services.points.service import goals, limits, members, reminders
from shared.db.database import Database
from shared.runtime import Runtime

log = logging.getLogger(__name__)


async def settle_due_members(db: Database) -> int:
    """Releases matured pending points and expires lots past their date, one member per transaction.
    Safe to run twice or in two instances at once: each member is settled under its row lock, and a settled
    member has nothing due."""
    done: set[str] = set()
    while True:
        async with db.read() as session:
            due = [m for m in await members.members_due(session) if m not in done]
        if not due:
            return len(done)
        for member_id in due:
            async with db.transaction() as session:
                await members.settle_member(session, member_id)
            done.add(member_id)


async def expire_points(runtime: Runtime) -> None:
    """The minute job: settle who is due, remind of lots about to expire, settle the goals' periods and cards,
    then the budget figures of ``/metrics``."""
    settled = await settle_due_members(runtime.db)
    if settled:
        log.info("expiry job: settled %d members", settled)
    reminded = await reminders.send_reminders(runtime.db)
    if reminded:
        log.info("expiry job: %d expiry reminders sent", reminded)
    reached = await goals.settle_goals(runtime.db)
    if reached:
        log.info("goal job: %d goals reached", reached)
    async with runtime.db.read() as session:
        await limits.refresh_gauges(session)
