"""The program row is created on first use; the first requests of a new database may all get there at once."""

from __future__ import annotations

import asyncio

import httpx


async def test_first_requests_at_once_all_read_the_default_program(client: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*(client.get("/v1/program") for _ in range(8)))
    assert [answer.status_code for answer in answers] == [200] * 8, [answer.text for answer in answers]
    assert len({answer.json()["updated_at"] for answer in answers}) == 1
