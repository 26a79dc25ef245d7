"""What every service answers the same way: health, readiness, metrics, problem+json, settings checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from pydantic import ValidationError

from services.points.settings import Settings
from tests.support import service_client
from tests.system.harness import free_port


async def test_health_ready_metrics_and_openapi(empty_db: Callable[[str], Awaitable[str]]) -> None:
    await empty_db("points")
    async with service_client("points") as (_, client):
        assert (await client.get("/healthz", headers={"Authorization": ""})).json() == {"status": "ok"}
        ready = await client.get("/readyz", headers={"Authorization": ""})
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "kafka": "disabled"}}
        await client.get("/v1/program")
        assert (await client.get("/metrics", headers={"Authorization": ""})).status_code == 401
        metrics = (await client.get("/metrics")).text
        assert 'loyalty_http_requests_total{method="GET",route="/v1/program",service="points",status="200"}' in metrics
        assert "/v1/purchases" in (await client.get("/openapi.json")).json()["paths"]


async def test_database_away_is_503_problem_never_500() -> None:
    url = f"postgresql+asyncpg://loyalty:loyalty@127.0.0.1:{free_port()}/nowhere"
    async with service_client("points", database_url=url) as (_, client):
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        answer = await client.get("/v1/members/C-1")
        assert answer.status_code == 503
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["type"] == "/problems/service-unavailable"


async def test_bad_input_is_a_clear_problem(empty_db: Callable[[str], Awaitable[str]]) -> None:
    await empty_db("points")
    async with service_client("points") as (_, client):
        broken = await client.post("/v1/purchases", content=b"{not json",
                                   headers={"Content-Type": "application/json"})
        assert broken.status_code == 422 and broken.json()["type"] == "/problems/validation-error"
        bad_id = await client.put("/v1/members/has space", json={})
        assert bad_id.status_code == 422 and bad_id.json()["errors"][0]["loc"] == ["path", "member_id"]
        nan = await client.post("/v1/purchases", json={
            "purchase_id": "p", "member_id": "m", "occurred_at": "2026-11-20T10:15:00Z", "currency": "USD",
            "total": "NaN"})
        assert nan.status_code == 422 and nan.json()["errors"][0]["loc"] == ["body", "total"]
        naive = await client.post("/v1/purchases", json={
            "purchase_id": "p", "member_id": "m", "occurred_at": "2026-11-20T10:15:00", "currency": "USD",
            "total": "1"})
        assert naive.status_code == 422
        unknown_route = await client.get("/v1/nothing-here")
        assert unknown_route.status_code == 404 and unknown_route.json()["type"] == "/problems/not-found"


def test_placeholder_admin_key_refused_outside_development() -> None:
    with pytest.raises(ValidationError):
        Settings(environment="production", bootstrap_admin_key="changeme")
    assert Settings(environment="production", bootstrap_admin_key="a-long-random-secret-key").environment


async def test_oversized_body_is_413_problem(empty_db: Callable[[str], Awaitable[str]]) -> None:
    await empty_db("points")
    async with service_client("points", max_body_bytes=2048) as (_, client):
        big = await client.post("/v1/purchases/batch", content=b'{"purchases": [' + b" " * 4096 + b"]}",
                                headers={"Content-Type": "application/json"})
        assert big.status_code == 413 and big.json()["type"] == "/problems/payload-too-large"

        async def chunks():  # no Content-Length: counted while it streams in
            for _ in range(4):
                yield b" " * 1024

        streamed = await client.post("/v1/purchases/batch", content=chunks(),
                                     headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413


@pytest.mark.parametrize("key", ["changeme", "ADMIN", "short-key", "aaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababab"])
def test_a_weak_admin_key_is_refused_unless_development_is_set_explicitly(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOYALTY_ENV", raising=False)
    with pytest.raises(ValidationError, match="LOYALTY_ENV=development"):
        Settings(bootstrap_admin_key=key)  # production unless told otherwise
    monkeypatch.setenv("LOYALTY_ENV", "development")
    assert Settings(bootstrap_admin_key=key).environment == "development"
