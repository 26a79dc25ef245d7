"""Expiry reminders: ``points.expiring`` about each lot, ``expiry_reminder_days`` before it expires, once.

The reminder is what a shop's e-mail tool or webhook receiver turns into "120 points expire on 31 January",
the message that brings a lapsing member back; so it is sent about points the member can spend (not pending
ones, not a suspended or closed member's) and never twice. Each member's lots are reminded of in one
transaction under the member's row lock, with ``reminded_at`` set beside the outbox rows: a second run, a
second instance or a run after a crash finds nothing left to send about them.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.points.models import Lot, Member
from services.points.service import OUTBOX
from services.points.service.ledger import snapshot
from services.points.service.members import locked_member
from services.points.service.program import get_program
from shared.clock import utcnow
from shared.db.database import Database
from shared.messaging import events


def _due(days: int) -> ColumnElement[bool]:
    """Lots to remind of now: spendable, not reminded of yet, expiring within ``days`` (the partial index
    ``ix_lot_due_reminder`` holds exactly the first three)."""
    return and_(Lot.remaining > 0, Lot.reminded_at.is_(None), Lot.pending.is_(False),
                Lot.expires_at <= utcnow() + timedelta(days=days))


async def remind_member(session: AsyncSession, member_id: str, days: int) -> int:
    """Sends the member's due reminders; returns how many."""
    member = await locked_member(session, member_id)  # settled: a lot past its date is expired, not reminded of
    if member.status != "active":
        return 0
    lots = (await session.execute(
        select(Lot).where(Lot.member_id == member_id, _due(days)).order_by(Lot.expires_at, Lot.lot_id)
        .with_for_update())).scalars().all()
    now = utcnow()
    for lot in lots:
        lot.reminded_at = now
        await OUTBOX.add(session, events.PointsExpiring(
            member_id=member_id, points=lot.remaining, balance=snapshot(member), expires_at=lot.expires_at,
            earned_at=lot.earned_at))
    await session.flush()
    return len(lots)


async def send_reminders(db: Database, batch: int = 500) -> int:
    """Every due reminder, member by member; returns how many were sent. Safe to run twice or in two instances
    at once (see the module's docstring)."""
    async with db.read() as session:
        days = (await get_program(session)).expiry_reminder_days
    if days <= 0:
        return 0
    sent, done = 0, set[str]()
    while True:
        async with db.read() as session:
            rows = await session.execute(
                select(Lot.member_id).join(Member, Member.member_id == Lot.member_id)
                .where(_due(days), Member.status == "active").distinct().limit(batch))
            due = [member_id for (member_id,) in rows if member_id not in done]
        if not due:
            return sent
        for member_id in due:
            async with db.transaction() as session:
                sent += await remind_member(session, member_id, days)
            done.add(member_id)
