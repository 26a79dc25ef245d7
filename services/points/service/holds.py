"""How a hold of the checkout ends: captured (its points spent, the rest given back), voided or expired (all
given back), each part into the lot it came from. The use cases are in ``checkout``; this module is what
``members.settle`` needs too, to give back holds past their time before anything else reads the balance.

The caller holds the member row locked, then the hold's: every path takes them in that order.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain
from services.points.models import Hold, Member
from services.points.service import OUTBOX, ledger
from shared.clock import utcnow
from shared.messaging import events


def due_clause(now: datetime | ColumnElement[datetime]) -> Any:
    """Holds still held at ``now`` whose time is up."""
    return and_(Hold.status == "held", Hold.expires_at <= now)


async def expire_due(session: AsyncSession, member: Member) -> None:
    """Give back the member's holds past their time (a member who holds nothing costs no statement)."""
    if member.held <= 0:
        return
    due = (await session.execute(
        select(Hold).where(Hold.member_id == member.member_id, due_clause(utcnow()))
        .order_by(Hold.expires_at, Hold.hold_id).with_for_update()
    )).scalars().all()
    for hold in due:
        await end(session, member, hold, "expired")


async def end(session: AsyncSession, member: Member, hold: Hold, status: str, *, captured: int = 0,
              value: Decimal = Decimal(0)) -> None:
    """End a held hold as ``status``: spend ``captured`` of its points (a ``spend`` entry with the hold's id,
    soonest-expiring parts first) and give the rest back to their lots, with the events that say so."""
    spent, back = domain.split_parts(hold.lots, captured)
    if captured:
        await ledger.spend_held(session, member, captured, hold_id=hold.hold_id, purchase_id=hold.purchase_id)
        await OUTBOX.add(session, events.PointsSpent(member_id=member.member_id, hold_id=hold.hold_id,
                                                     points=captured, balance=ledger.snapshot(member)))
    if back:
        released = await ledger.release(session, member, back)
        await OUTBOX.add(session, events.PointsReleased(
            member_id=member.member_id, hold_id=hold.hold_id, points=released,
            reason="captured" if status == "captured" else status, balance=ledger.snapshot(member)))
    hold.status = status
    hold.captured_points = captured
    hold.captured_value = value
    hold.lots = spent
    hold.settled_at = utcnow()
    await session.flush()
