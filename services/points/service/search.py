"""The operator's member search: ``q`` a prefix of the id, the name, an e-mail, a phone or any identifier
(case-insensitively), filters on status, tier and segment, keyset pages on member_id.

Each prefix is matched through its own index (``ix_member_member_id_prefix``, ``ix_member_name_prefix``,
``ix_member_identifier_prefix``: pattern-ops btrees on PostgreSQL, so ``LIKE 'abc%'`` is a range scan), the
candidates are united and the page is read by the member key after the cursor: no OFFSET, no scan of the
members for a q. The member's own e-mail and phone are found through their mirrored identifiers.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import CompoundSelect, func, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import schemas
from services.points.models import Member, MemberIdentifier
from services.points.service.members import member_out
from shared.http.pagination import decode_cursor, encode_cursor

PHONE_LIKE = re.compile(r"\+?[0-9 ()./-]+")


def _escaped(prefix: str) -> str:
    """A LIKE pattern for ``prefix%`` (its own % and _ taken literally)."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _candidates(q: str, after: str | None) -> CompoundSelect[Any]:
    """The ids of members q matches by prefix, each branch through its index."""
    lowered = _escaped(q.lower())
    branches = [
        select(Member.member_id).where(func.lower(Member.member_id).like(lowered, escape="\\")),
        select(Member.member_id).where(func.lower(Member.name).like(lowered, escape="\\")),
        select(MemberIdentifier.member_id).where(func.lower(MemberIdentifier.normalized).like(lowered, escape="\\")),
    ]
    digits = "".join(char for char in q if char in "0123456789")
    if PHONE_LIKE.fullmatch(q) and digits and digits != q:  # "+1 (555)" finds the phone 1555...
        branches.append(select(MemberIdentifier.member_id).where(
            MemberIdentifier.kind == "phone", func.lower(MemberIdentifier.normalized).like(digits + "%")))
    if after is not None:
        branches = [branch.where(branch.selected_columns[0] > after) for branch in branches]
    return union(*branches)


async def search(session: AsyncSession, *, q: str | None, status: str | None, tier: str | None,
                 value_class: str | None, lifecycle: str | None, limit: int, cursor: str | None
                 ) -> tuple[list[schemas.MemberListed], str | None]:
    after = str(decode_cursor(cursor, (str,))[0]) if cursor else None
    query = select(Member)
    q = (q or "").strip()
    if q:
        query = query.where(Member.member_id.in_(_candidates(q, after)))
    if after is not None:
        query = query.where(Member.member_id > after)
    for column, wanted in ((Member.status, status), (Member.tier_id, tier), (Member.value_class, value_class),
                           (Member.lifecycle, lifecycle)):
        if wanted is not None:
            query = query.where(column == wanted)
    rows = (await session.execute(query.order_by(Member.member_id).limit(limit + 1))).scalars().all()
    items = [listed(member) for member in rows[:limit]]
    next_cursor = encode_cursor([rows[limit - 1].member_id]) if len(rows) > limit else None
    return items, next_cursor


def listed(member: Member) -> schemas.MemberListed:
    """A member as the search lists it (the search is for admin keys, which read contacts)."""
    return schemas.MemberListed(**member_out(member, contacts=True).model_dump(), value_class=member.value_class,
                                lifecycle=member.lifecycle)

