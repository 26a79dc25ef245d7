"""The benchmark's reference write (bench/reference.py): only on the benchmark's own app, behind the same auth
as a purchase, and one committed row per call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.reference import create_points_app
from tests.support import app_client, service_client, settings_for


async def test_not_mounted_in_the_service_app(empty_db: Callable[[str], Awaitable[str]]) -> None:
    await empty_db("points")
    async with service_client("points") as (_, client):
        assert (await client.post("/bench/reference-write")).status_code == 404


async def test_needs_a_key_like_a_purchase(empty_db: Callable[[str], Awaitable[str]]) -> None:
    await empty_db("points")
    async with app_client(create_points_app(settings_for("points"))) as client:
        answer = await client.post("/bench/reference-write", headers={"Authorization": "Bearer not-a-key"})
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_each_call_commits_one_row(empty_db: Callable[[str], Awaitable[str]]) -> None:
    url = await empty_db("points")
    async with app_client(create_points_app(settings_for("points"))) as client:
        answers = [await client.post("/bench/reference-write") for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert len({a.json()["id"] for a in answers}) == 3
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM bench_reference"))).scalar_one()
    finally:
        await engine.dispose()
    assert count == 3
