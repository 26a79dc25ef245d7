"""The simulation figure's harness (bench/simulation.py): the bulk-seeded purchases are ones points reads as it
reads its own, the proposal is a valid body, and the row's target is 100 us a purchase. No timings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from bench import simulation
from services.points.schemas import SimulationIn
from tests.support import service_client


def test_the_row_is_met_under_100_us_a_purchase() -> None:
    measured = {"purchases": 100_000, "seeded": 100_000, "seconds": 5.0, "reference_seconds": 0.5, "valid": True}
    row = simulation.row(measured)
    assert (row.ratio, row.target, row.met) == (10.0, "< 10 s", True)
    assert not simulation.row({**measured, "seconds": 10.5}).met
    assert "INVALID" in simulation.row({**measured, "purchases": 99_999, "valid": False}).value


async def test_seeded_purchases_are_read_as_points_reads_its_own(empty_db: Callable[[str], Awaitable[str]]) -> None:
    url = await empty_db("points")
    start = simulation.window_start()
    body = simulation.proposal("r-sim-", start)
    SimulationIn.model_validate(body)
    async with service_client("points") as (_, client):
        for rule in simulation.RULES:
            assert (await client.post("/v1/earning-rules", json={**rule, "rule_id": f"r-sim-{rule['rule_id']}"})
                    ).status_code == 201
        for index in range(3):
            assert (await client.put(f"/v1/members/B-{index}", json={})).status_code == 201
        await simulation.seed_purchases(url, "r-sim-", "B-", 3, 12, start, chunk=5)
        answer = (await client.post("/v1/earning-rules/simulate", json=body)).json()
        assert (answer["purchases"], answer["members"]) == (12, 3)
        # A basket: 42 base, +20 on groceries (x2, then x3: +40), +15 on drinks x2 up to 40 a week, 20 bonus.
        current = {item["rule_id"]: item["current_points"] for item in answer["by_rule"]}
        assert (current["base"], current["r-sim-grocery"], current["r-sim-welcome"]) == (12 * 42, 12 * 20, 3 * 50)
        proposed = {item["rule_id"]: item["points"] for item in answer["by_rule"]}
        assert (proposed["r-sim-grocery"], proposed["r-sim-basket"]) == (12 * 40, 12 * 20)
        reference_seconds, rows = await simulation.plain_read(url, start, start + timedelta(days=simulation.DAYS))
        assert rows == 12 and reference_seconds >= 0
