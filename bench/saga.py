"""The redemption saga's figure: from `POST /v1/redemptions` to `confirmed`, members redeeming side by side."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench.kafka_figures import percentile
from bench.seed import REWARD_ID, expect
from bench.system import System


async def redemptions(system: System, member_ids: list[str], seconds: float, run_id: str) -> dict[str, Any]:
    """Each member redeems one reward after another for ``seconds``; the answer is awaited with `?wait=10`
    as the contract suggests, so the time is request -> confirmed as a shop would see it."""
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    async with system.client("rewards") as rewards:

        async def member_loop(member_id: str) -> None:
            index = 0
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                index += 1
                redemption_id = f"{run_id}-{member_id}-{index}"
                started = time.perf_counter()
                try:
                    expect(await rewards.post("/v1/redemptions", json={
                        "redemption_id": redemption_id, "member_id": member_id, "reward_id": REWARD_ID}), 202)
                    status = "pending"
                    while status == "pending" and time.perf_counter() - started < 60:
                        answer = expect(await rewards.get(f"/v1/redemptions/{redemption_id}",
                                                          params={"wait": 10}), 200)
                        status = answer.json()["status"]
                except (httpx.HTTPError, RuntimeError) as exc:
                    status = f"error: {str(exc)[:80] or type(exc).__name__}"
                outcomes[status] = outcomes.get(status, 0) + 1
                if status == "confirmed":
                    latencies.append((time.perf_counter() - started) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(member_loop(m) for m in member_ids))
        elapsed = time.perf_counter() - began
    confirmed = outcomes.get("confirmed", 0)
    return {"members": len(member_ids), "redemptions": sum(outcomes.values()), "outcomes": outcomes,
            "per_second": round(confirmed / elapsed, 1), "errors": sum(outcomes.values()) - confirmed,
            "p50_ms": round(percentile(latencies, 50), 1), "p99_ms": round(percentile(latencies, 99), 1)}
