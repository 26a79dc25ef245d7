"""What an operator does by hand: adjust a member's points (with a reason) and transfer points between
members; each is recorded with the operator's key name as the actor."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain, schemas
from services.points.errors import InsufficientPoints, MemberInactive
from services.points.service import IDEMPOTENCY, OUTBOX, ledger
from services.points.service.balances import entry_out
from services.points.service.members import locked_member, snapshot
from services.points.service.program import get_program
from shared.clock import utcnow
from shared.errors import InvalidRequest
from shared.http.idempotency import request_hash
from shared.messaging import events


async def adjust(session: AsyncSession, member_id: str, body: schemas.AdjustmentIn, actor: str
                 ) -> tuple[dict[str, Any], bool]:
    """A manual correction; a negative one cannot take the available balance below zero."""
    replay = await IDEMPOTENCY.claim(session, "adjustment", body.adjustment_id,
                                     request_hash({"member_id": member_id, **body.model_dump()}, owner=actor))
    if replay is not None:
        return replay, False
    member = await locked_member(session, member_id)
    program = await get_program(session)
    refs: dict[str, Any] = {"adjustment_id": body.adjustment_id, "actor": actor, "note": body.reason}
    if body.points > 0:
        entry, _ = await ledger.credit(session, member, "adjust", body.points,
                                       expires_at=domain.expiry_for(utcnow(), program.expiry_days), **refs)
    else:
        if member.available < -body.points:
            raise InsufficientPoints(
                f"Member '{member_id}' has {member.available} points available; cannot remove {-body.points}.")
        entry, _ = await ledger.debit(session, member, "adjust", -body.points, **refs)
    await OUTBOX.add(session, events.PointsAdjusted(
        member_id=member_id, points=body.points, balance=snapshot(member), adjustment_id=body.adjustment_id,
        reason=body.reason, actor=actor))
    answer = entry_out(entry).model_dump(mode="json")
    await IDEMPOTENCY.complete(session, "adjustment", body.adjustment_id, 201, answer)
    return answer, True


async def transfer(session: AsyncSession, member_id: str, body: schemas.TransferIn, actor: str
                   ) -> tuple[dict[str, Any], bool]:
    """Move available points to another member; the receiver's lots keep the sender's expiry dates."""
    replay = await IDEMPOTENCY.claim(session, "transfer", body.transfer_id,
                                     request_hash({"member_id": member_id, **body.model_dump()}, owner=actor))
    if replay is not None:
        return replay, False
    if body.to_member_id == member_id:
        raise InvalidRequest("to_member_id: a member cannot transfer to itself",
                             errors=[{"loc": ["body", "to_member_id"], "msg": "same as the sender"}])
    # Lock both rows in id order so that two opposite transfers cannot deadlock.
    locked = {m: await locked_member(session, m) for m in sorted((member_id, body.to_member_id))}
    sender, receiver = locked[member_id], locked[body.to_member_id]
    for member in (sender, receiver):
        if member.status != "active":
            raise MemberInactive(f"Member '{member.member_id}' is {member.status}.")
    if sender.available < body.points:
        raise InsufficientPoints(
            f"Member '{member_id}' has {sender.available} points available; cannot transfer {body.points}.")
    refs: dict[str, Any] = {"transfer_id": body.transfer_id, "actor": actor, "note": body.reason}
    out_entry, taken = await ledger.debit(session, sender, "transfer_out", body.points, **refs)
    in_entry = await ledger.receive(session, receiver, "transfer_in", taken, **refs)
    await OUTBOX.add(
        session,
        events.PointsTransferred(member_id=member_id, points=body.points, balance=snapshot(sender),
                                 transfer_id=body.transfer_id, to_member_id=body.to_member_id, direction="out"),
        events.PointsTransferred(member_id=body.to_member_id, points=body.points, balance=snapshot(receiver),
                                 transfer_id=body.transfer_id, to_member_id=body.to_member_id, direction="in"),
    )
    answer = schemas.TransferResult(
        transfer_id=body.transfer_id, from_member_id=member_id, to_member_id=body.to_member_id,
        points=body.points, entries=[entry_out(out_entry), entry_out(in_entry)],
    ).model_dump(mode="json")
    await IDEMPOTENCY.complete(session, "transfer", body.transfer_id, 201, answer)
    return answer, True
