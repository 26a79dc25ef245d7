"""Request bodies and small steps for points tests."""

from __future__ import annotations

from typing import Any

import httpx

from shared.clock import utcnow


def purchase(purchase_id: str, member_id: str, total: str = "10.00", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "purchase_id": purchase_id, "member_id": member_id, "store_id": "store-1", "channel": "pos",
        "occurred_at": "2026-11-20T10:15:00Z", "currency": "USD", "total": total,
    }
    body.update(fields)
    return body


def now_purchase(purchase_id: str, member_id: str, total: str = "10.00", **fields: Any) -> dict[str, Any]:
    """A purchase that happens at the services' clock (which tests may have moved)."""
    return purchase(purchase_id, member_id, total, occurred_at=utcnow().isoformat(), **fields)


def program(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"currency": "USD", "points_per_unit": "1", "expiry_days": 365, "pending_days": 0,
                            "excluded_categories": []}
    body.update(overrides)
    return body


async def enroll(client: httpx.AsyncClient, member_id: str, **body: Any) -> None:
    response = await client.put(f"/v1/members/{member_id}", json=body)
    assert response.status_code == 201, response.text


async def available(client: httpx.AsyncClient, member_id: str) -> int:
    answer = await client.get(f"/v1/members/{member_id}/balance")
    assert answer.status_code == 200, answer.text
    points: int = answer.json()["available"]
    return points


async def buy(client: httpx.AsyncClient, purchase_id: str, member_id: str, total: str, **fields: Any
              ) -> dict[str, Any]:
    answer = await client.post("/v1/purchases", json=now_purchase(purchase_id, member_id, total, **fields))
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body
