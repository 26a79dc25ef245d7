"""Idempotent HTTP writes: the client's id for a write is claimed in the write's own transaction.

The same id with the same body from the same API key replays the first answer; with another body, or from
another key, it is a conflict (an id belongs to the key that first used it). On
PostgreSQL a concurrent retry waits on the claimed key until the first request commits, then replays it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, Insert, Integer, MetaData, String, Table, Text, Update, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clock import utcnow
from shared.db.driver import WritesTogether
from shared.db.statements import insert_ignoring_conflicts
from shared.db.types import UTCDateTime
from shared.errors import IdempotencyConflict


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_key",
        metadata,
        Column("operation", String(32), primary_key=True),
        Column("key", String(64), primary_key=True),
        Column("request_hash", String(64), nullable=False),
        Column("status_code", Integer, nullable=True),
        Column("response", Text, nullable=True),
        Column("created_at", UTCDateTime, nullable=False),
    )


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot hash {type(value).__name__}")


def request_hash(body: BaseModel | dict[str, Any], *, owner: str) -> str:
    """Hash of the validated body, so "12.3" and "12.30", or the same instant in two offsets, match, and of
    the ``owner`` (the calling key's name): an id is the key's own, so another key that reuses it with the
    same body is a conflict, never a replay of the first key's answer."""
    data = body.model_dump() if isinstance(body, BaseModel) else body
    raw = json.dumps({"owner": owner, "body": data}, sort_keys=True, separators=(",", ":"), default=_canonical)
    return hashlib.sha256(raw.encode()).hexdigest()


class IdempotencyKeys:
    def __init__(self, table: Table) -> None:
        self.table = table
        self._claims: dict[str, Insert] = {}  # by dialect, built once: the claim is on every write's path

    def _claim(self, dialect: str) -> Insert:
        if dialect not in self._claims:
            t = self.table
            self._claims[dialect] = (
                insert_ignoring_conflicts(t, dialect)
                .values(operation=bindparam("operation"), key=bindparam("key"),
                        request_hash=bindparam("request_hash"), created_at=bindparam("created_at"))
                .returning(t.c.key))
        return self._claims[dialect]

    async def claim(
        self, session: AsyncSession, operation: str, key: str, body_hash: str
    ) -> dict[str, Any] | None:
        """None when this request is the first with ``key``; else the first answer's body to replay."""
        t = self.table
        connection = await session.connection()
        claimed = (await connection.execute(self._claim(connection.dialect.name), {
            "operation": operation, "key": key, "request_hash": body_hash, "created_at": utcnow()})).first()
        if claimed is not None:
            return None
        row = (await session.execute(
            select(t.c.request_hash, t.c.response).where(t.c.operation == operation, t.c.key == key)
        )).one()
        if row.request_hash != body_hash:
            raise IdempotencyConflict(
                f"{operation} '{key}' was already made with a different body; use a new id for a new request."
            )
        return json.loads(row.response) if row.response else {}

    async def complete(
        self, session: AsyncSession, operation: str, key: str, status_code: int, response: dict[str, Any]
    ) -> None:
        t = self.table
        await session.execute(
            update(t).where(t.c.operation == operation, t.c.key == key)
            .values(status_code=status_code, response=json.dumps(response, separators=(",", ":")))
        )

    def prepared_completion(self) -> Update:
        """``complete`` as a statement with bind parameters (values from ``completion_params``), for a use
        case that writes the answer in one statement with its other rows (``shared.db.driver.WritesTogether``)."""
        t = self.table
        value = WritesTogether.value
        return (update(t).where(t.c.operation == value("idempotency_operation"), t.c.key == value("idempotency_key"))
                .values(status_code=value("idempotency_status"), response=value("idempotency_response")))

    @staticmethod
    def completion_params(operation: str, key: str, status_code: int, response: dict[str, Any]) -> dict[str, Any]:
        return {"idempotency_operation": operation, "idempotency_key": key, "idempotency_status": status_code,
                "idempotency_response": json.dumps(response, separators=(",", ":"))}
