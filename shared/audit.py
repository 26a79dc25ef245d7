"""The audit trail: who (the key's name) changed what, with the resource as it was before and after.

Every service keeps its own (an ``audit_entry`` table in its database, ``GET /v1/audit`` on its API), for the
changes an operator makes: the program, rules, tiers, rewards, adjustments and transfers. An entry is written
in the transaction of the change it records, so there is never a change without its entry, nor an entry for
a change that rolled back; a replayed idempotent request, or settings put again as they were, changed nothing
and write none. The trail is only appended to. It holds no contact data: the resources it records are
configuration and points, and a member appears by id only.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import JSON, BigInteger, Column, Index, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clock import utcnow
from shared.db.types import UTCDateTime
from shared.http.pagination import Page, decode_cursor, encode_cursor

TABLE = "audit_entry"
STAMPS = frozenset({"updated_at", "updated_by"})


def audit_table(metadata: MetaData) -> Table:
    return Table(
        TABLE,
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("at", UTCDateTime, nullable=False),
        Column("actor", String(64), nullable=False),
        Column("action", String(64), nullable=False),
        Column("resource", String(200), nullable=False),
        Column("before", JSON, nullable=True),
        Column("after", JSON, nullable=True),
        Index("ix_audit_entry_resource", "resource", "id"),
        Index("ix_audit_entry_actor", "actor", "id"),
    )


def _plain(value: BaseModel | dict[str, Any] | None) -> Any:
    """A resource as the API shows it (its JSON), so the trail reads like the answers of the time."""
    if isinstance(value, BaseModel):
        return json.loads(value.model_dump_json())
    return value


def _unstamped(resource: Any) -> Any:
    """The resource without the stamps every write moves (when, by whom)."""
    if isinstance(resource, dict):
        return {key: value for key, value in resource.items() if key not in STAMPS}
    return resource


class AuditTrail:
    """Appends to one service's audit table; ``record`` only stages the row in the caller's transaction."""

    def __init__(self, table: Table) -> None:
        self.table = table

    async def record(self, session: AsyncSession, *, actor: str, action: str, resource: str,
                     before: BaseModel | dict[str, Any] | None = None,
                     after: BaseModel | dict[str, Any] | None = None) -> None:
        was, now = _plain(before), _plain(after)
        if was is not None and now is not None and _unstamped(was) == _unstamped(now):
            return  # the same settings put again: nothing changed, nothing to record
        await session.execute(self.table.insert().values(
            at=utcnow(), actor=actor, action=action, resource=resource, before=was, after=now))


class AuditEntry(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{
        "at": "2026-11-20T09:00:00Z", "actor": "marketing-lead", "action": "rule.updated",
        "resource": "earning-rule:double-groceries", "before": {"factor": "2"}, "after": {"factor": "3"}}]}}

    at: datetime
    actor: str = Field(description="The name of the key that made the change (its keys-file entry)")
    action: str = Field(description="What was done: `program.changed`, `rule.created`, `rule.updated`, "
                                    "`rule.deleted`, `points.adjusted`, `points.transferred`, `reward.created`, "
                                    "`reward.updated`, `tiers.changed`")
    resource: str = Field(description="What it was done to: `program`, `earning-rule:<id>`, `member:<id>`, "
                                      "`reward:<id>`, `tiers`")
    before: Any = Field(description="The resource as it was (null: it did not exist, or the change is an entry)")
    after: Any = Field(description="The resource as it became (null: deleted)")


async def audit_page(session: AsyncSession, table: Table, *, resource: str | None, actor: str | None,
                     since: datetime | None, limit: int, cursor: str | None) -> Page[AuditEntry]:
    """Newest first, keyset on the entry's id (a page costs the same however long the trail is)."""
    query = select(table).order_by(table.c.id.desc()).limit(limit + 1)
    if resource is not None:
        query = query.where(table.c.resource == resource)
    if actor is not None:
        query = query.where(table.c.actor == actor)
    if since is not None:
        query = query.where(table.c.at >= since)
    if cursor:
        (before_id,) = decode_cursor(cursor, (int,))
        query = query.where(table.c.id < before_id)
    rows = (await session.execute(query)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [AuditEntry(at=row.at, actor=row.actor, action=row.action, resource=row.resource, before=row.before,
                        after=row.after) for row in rows]
    return Page[AuditEntry](items=items, next_cursor=encode_cursor([rows[-1].id]) if more else None)
