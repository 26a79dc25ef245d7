"""Cursor pagination: opaque cursors over keyset values, never OFFSET."""

from __future__ import annotations

import base64
import binascii
import json
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


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("cursor: not a cursor this service gave out", errors=[
            {"loc": ["query", "cursor"], "msg": "invalid cursor"}]) from exc
    if not isinstance(values, list) or len(values) != arity:
        raise InvalidRequest("cursor: not a cursor this service gave out", errors=[
            {"loc": ["query", "cursor"], "msg": "invalid cursor"}])
    return values
