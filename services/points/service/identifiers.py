"""Identifiers: the cards, phones, e-mails and external ids a member is found by, one member per normalised
handle (the table's key), and the lookup by one of them in one indexed read.

Claiming a handle is ``INSERT ... ON CONFLICT DO NOTHING`` and then a read of who holds it: of two members
racing for one card, PostgreSQL makes the second insert wait for the first transaction and skip when it
committed, so the loser sees the winner's row and gets ``409 identifier-taken``, never a unique violation
(which would read as a contended 503).

The member's own e-mail and phone (``PUT /v1/members``) are mirrored as rows ``from_profile`` in the
transaction that sets them, replacing the previous ones, so ``lookup`` finds them like any other handle.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain, schemas
from services.points.errors import IdentifierTaken, MemberNotFound
from services.points.models import Member, MemberIdentifier, table_of
from services.points.service import members
from shared.clock import utcnow
from shared.db.statements import insert_ignoring_conflicts
from shared.errors import InvalidRequest
from shared.http.types import storable_text

LABELS = {"card": "card", "phone": "phone", "email": "e-mail", "external": "external id"}


def normalized(kind: str, value: str) -> str:
    """The value's normalised form, or a 422 when nothing is left to compare (a phone without digits)."""
    try:
        storable_text(value)
    except ValueError as exc:
        raise InvalidRequest(f"value: {exc}", errors=[{"loc": ["path", "value"], "msg": str(exc)}]) from exc
    key = domain.normalize_identifier(kind, value)
    if not key:
        msg = "a phone needs digits" if kind == "phone" else "must not be empty"
        raise InvalidRequest(f"value: {msg}", errors=[{"loc": ["path", "value"], "msg": msg}])
    return key


async def _claim(session: AsyncSession, member_id: str, kind: str, value: str, key: str, *,
                 from_profile: bool) -> bool:
    """Give the handle to the member; True when it was new to them. Held by another member: 409."""
    table = table_of(MemberIdentifier)
    inserted = (await session.execute(
        insert_ignoring_conflicts(table, session.get_bind().dialect.name).values(
            kind=kind, normalized=key, member_id=member_id, value=value.strip(), from_profile=from_profile,
            created_at=utcnow()).returning(table.c.kind)
    )).first()
    if inserted is not None:
        return True
    holder = (await session.execute(
        select(MemberIdentifier.member_id).where(MemberIdentifier.kind == kind, MemberIdentifier.normalized == key)
    )).scalar_one_or_none()
    if holder == member_id:
        return False
    if holder is None:  # released in the meantime: try once more (the insert now waits for no one)
        return await _claim(session, member_id, kind, value, key, from_profile=from_profile)
    raise IdentifierTaken(f"The {LABELS[kind]} '{value.strip()}' is held by another member.")


async def put_identifier(session: AsyncSession, member_id: str, kind: str, value: str) -> bool:
    """Give a handle to a member; returns whether it was new to them (201) or already theirs (200)."""
    key = normalized(kind, value)
    await members.get_member(session, member_id)
    return await _claim(session, member_id, kind, value, key, from_profile=False)


async def delete_identifier(session: AsyncSession, member_id: str, kind: str, value: str) -> None:
    """Take a handle from a member; nothing to do when they do not hold it (idempotent)."""
    key = domain.normalize_identifier(kind, value)
    await session.execute(delete(MemberIdentifier).where(
        MemberIdentifier.kind == kind, MemberIdentifier.normalized == key, MemberIdentifier.member_id == member_id))


async def mirror_profile(session: AsyncSession, member: Member, kind: str, value: str | None) -> None:
    """Make the member's profile e-mail or phone findable: replace the row mirrored from the profile before
    (a handle given by hand stays). Taken by another member's identifier: 409."""
    if value is None:
        return
    key = domain.normalize_identifier(kind, value)
    await session.execute(delete(MemberIdentifier).where(
        MemberIdentifier.member_id == member.member_id, MemberIdentifier.kind == kind,
        MemberIdentifier.from_profile.is_(True), MemberIdentifier.normalized != key))
    if key:
        await _claim(session, member.member_id, kind, value, key, from_profile=True)


async def identifiers_of(session: AsyncSession, member_id: str) -> list[schemas.Identifier]:
    rows = (await session.execute(
        select(MemberIdentifier.kind, MemberIdentifier.value).where(MemberIdentifier.member_id == member_id)
        .order_by(MemberIdentifier.kind, MemberIdentifier.normalized))).all()
    return [schemas.Identifier(kind=kind, value=value) for kind, value in rows]


async def lookup(session: AsyncSession, kind: str, value: str, *, contacts: bool) -> schemas.MemberFound:
    """The member holding the handle (one read by the table's key, joined to the member), with all their
    handles; none: 404."""
    key = domain.normalize_identifier(kind, value)
    member = (await session.execute(
        select(Member).join(MemberIdentifier, MemberIdentifier.member_id == Member.member_id)
        .where(MemberIdentifier.kind == kind, MemberIdentifier.normalized == key)
    )).scalar_one_or_none() if key else None
    if member is None:
        raise MemberNotFound(f"No member holds the {LABELS[kind]} '{value.strip()}'.")
    handles = await identifiers_of(session, member.member_id)
    if not contacts:  # a key lent to a till reads no e-mail or phone, as identifiers neither
        handles = [handle for handle in handles if handle.kind not in ("email", "phone")]
    return schemas.MemberFound(**members.member_out(member, contacts=contacts).model_dump(), identifiers=handles)
