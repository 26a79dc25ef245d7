"""Cursor pagination: opaque cursors over keyset values, never OFFSET."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from shared.errors import InvalidRequest
from shared.http.types import PLAIN_INTEGER, storable_text

Limit = Annotated[int, Query(ge=1, le=500, description="Page size (default 50, at most 500)"), PLAIN_INTEGER]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


INT64 = 2**63 - 1
CursorValue = type[int] | type[str] | type[datetime]


def _read(value: Any, kind: CursorValue) -> Any:
    """``value`` as ``kind`` (an integer a 64-bit column can compare with; a string either database stores;
    a moment with its offset), or ``None`` when it is not one: a forged cursor is refused here, before any
    query, not by the database (which would answer each in its own way)."""
    if kind is int:
        return value if type(value) is int and -INT64 <= value <= INT64 else None
    if not isinstance(value, str):
        return None
    if kind is str:
        return value if _storable(value) else None
    try:
        moment = datetime.fromisoformat(value)
        return moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):  # not a moment, or one beyond the calendar once in UTC
        return None


def _storable(text: str) -> bool:
    try:
        storable_text(text)
    except ValueError:
        return False
    return True


def decode_cursor(cursor: str, kinds: tuple[CursorValue, ...]) -> list[Any]:
    """The values of a cursor ``encode_cursor`` gave out, one of each of ``kinds`` (``(int,)``, ``(datetime,
    str)``: a moment is read back from its ISO text), or a 422 naming the cursor."""
    invalid = InvalidRequest("cursor: not a cursor this service gave out", errors=[
        {"loc": ["query", "cursor"], "msg": "invalid cursor"}])
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise invalid from exc
    if not isinstance(values, list) or len(values) != len(kinds):
        raise invalid
    read = [_read(value, kind) for value, kind in zip(values, kinds, strict=True)]
    if any(value is None for value in read):
        raise invalid
    return read
