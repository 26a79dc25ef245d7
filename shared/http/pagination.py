"""Cursor pagination: opaque cursors over keyset values, never OFFSET."""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from shared.errors import InvalidRequest

Limit = Annotated[int, Query(ge=1, le=500, description="Page size (default 50, at most 500)")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


INT64 = 2**63 - 1


def _storable(value: Any) -> bool:
    """What a cursor of ours can hold: strings and numbers a 64-bit column can compare with, or null. A
    forged cursor must be refused here, not by the database (an integer beyond int64 fails in the driver)."""
    if value is None or isinstance(value, str):
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -INT64 <= value <= INT64
    return isinstance(value, float) and math.isfinite(value) and abs(value) <= INT64


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    invalid = InvalidRequest("cursor: not a cursor this service gave out", errors=[
        {"loc": ["query", "cursor"], "msg": "invalid cursor"}])
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise invalid from exc
    if not isinstance(values, list) or len(values) != arity or not all(_storable(v) for v in values):
        raise invalid
    return values
