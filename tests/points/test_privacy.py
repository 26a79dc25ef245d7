"""Personal data stays where it belongs: keys never in logs, e-mail and phone never in events."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from fastapi import FastAPI

from tests.points.builders import purchase
from tests.support import ADMIN_KEY, outbox_events


async def test_email_and_phone_never_leave_points_in_events(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.put("/v1/members/pii-1", json={"name": "Grace", "email": "grace@example.com",
                                                "phone": "+44 20 7946 0000", "birth_date": "1980-05-01"})
    await client.put("/v1/members/pii-1", json={"email": "grace.h@example.com", "phone": "+44 20 7946 0001"})
    await client.post("/v1/purchases", json=purchase("pii-p1", "pii-1"))
    published = json.dumps(await outbox_events(app))
    for secret in ("grace@example.com", "grace.h@example.com", "7946", "Grace"):
        assert secret not in published


async def test_api_keys_never_appear_in_logs(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await client.get("/v1/members/nobody")
    await client.get("/v1/members/nobody", headers={"Authorization": "Bearer wrong-key-123"})
    await client.get("/v1/members/nobody", headers={"X-API-Key": "another-wrong-key"})
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert ADMIN_KEY not in logged and "wrong-key-123" not in logged and "another-wrong-key" not in logged


async def test_text_the_database_cannot_store_is_422_not_500(client: httpx.AsyncClient) -> None:
    answer = await client.put("/v1/members/nul-1", json={"name": "a\u0000b"})
    assert answer.status_code == 422 and answer.json()["type"] == "/problems/validation-error"
