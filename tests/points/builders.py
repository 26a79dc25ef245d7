"""Request bodies for points tests."""

from __future__ import annotations

from typing import Any


def purchase(purchase_id: str, member_id: str, total: str = "10.00", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "purchase_id": purchase_id, "member_id": member_id, "store_id": "store-1", "channel": "pos",
        "occurred_at": "2026-11-20T10:15:00Z", "currency": "USD", "total": total,
    }
    body.update(fields)
    return body
