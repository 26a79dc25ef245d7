"""`loyalty apply FILE --simulate --from --to`: the body it sends, the table it prints, its options, and a run
against points on PostgreSQL that applies nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ops.cli import app
from ops.client import Api, Endpoints
from ops.program import parse_program
from ops.simulation import NothingToSimulate, simulate_program, simulation_body, simulation_table
from tests.support import ADMIN_KEY, service_client

FILE = """
earning_rules:
  - {rule_id: double, kind: multiplier, factor: "3", match: {categories: [grocery]}}
  - {rule_id: basket, kind: bonus, points: 5, trigger: min_spend, min_spend: "20"}
"""
ANSWER: dict[str, Any] = {
    "purchases": 1840, "members": 612, "members_changed": 398, "current": {"points": 51_230},
    "proposed": {"points": 60_410}, "liability_value_delta": "91.80", "currency": "USD", "skipped": ["card"],
    "by_rule": [{"rule_id": "base", "points": 41_200, "current_points": 41_200, "change": None},
                {"rule_id": "tier", "points": 3_010, "current_points": 2_730, "change": None},
                {"rule_id": "app", "points": 0, "current_points": 1_600, "change": "removed"},
                {"rule_id": "basket", "points": 4_300, "current_points": 0, "change": "added"},
                {"rule_id": "double", "points": 11_900, "current_points": 5_700, "change": "replaced"}]}


def test_the_body_is_every_rule_of_the_file_and_with_prune_the_rest_removed() -> None:
    desired = parse_program(FILE)
    body = simulation_body(desired, ["app", "double"], "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
    assert [rule["rule_id"] for rule in body["rules"]] == ["double", "basket"]
    assert body["rules"][0] == {"rule_id": "double", "kind": "multiplier", "factor": "3",
                                "match": {"categories": ["grocery"]}}
    assert (body["remove"], body["from"], body["to"]) == ([], "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
    assert simulation_body(desired, ["app", "double"], "a", "b", prune=True)["remove"] == ["app"]
    with pytest.raises(NothingToSimulate):
        simulation_body(parse_program("rewards: []"), [], "a", "b")


def test_the_table() -> None:
    assert simulation_table(ANSWER, "2026-10-01", "2026-11-01") == [
        "simulation of 1,840 purchases by 612 members from 2026-10-01 to 2026-11-01:",
        "rule    change    current  proposed  difference",
        "------  --------  -------  --------  ----------",
        "base               41,200    41,200           0",
        "tier                2,730     3,010        +280",
        "app     removed     1,600         0      -1,600",
        "basket  added           0     4,300      +4,300",
        "double  replaced    5,700    11,900      +6,200",
        "------  --------  -------  --------  ----------",
        "total              51,230    60,410      +9,180",
        "members whose points change: 398 of 612",
        "liability: +91.80 USD",
        "goal rules not simulated (settled per period): card",
        "nothing applied (simulation)",
    ]
    fewer = simulation_table({**ANSWER, "liability_value_delta": "-0.50", "skipped": []}, "a", "b")
    assert fewer[-2:] == ["liability: -0.50 USD", "nothing applied (simulation)"]


@pytest.mark.parametrize(("args", "says"), [
    (["--simulate"], "--simulate needs --from and --to"),
    (["--simulate", "--from", "2026-10-01T00:00:00Z"], "--simulate needs --from and --to"),
    (["--from", "2026-10-01T00:00:00Z"], "--from and --to go with --simulate"),
])
def test_the_options_go_together(tmp_path: Path, args: list[str], says: str) -> None:
    path = tmp_path / "program.yaml"
    path.write_text(FILE)
    result = CliRunner().invoke(app, ["apply", str(path), *args, "--key", "k"])
    assert result.exit_code == 2 and says in result.output


def test_a_file_without_rules_has_nothing_to_simulate(tmp_path: Path) -> None:
    path = tmp_path / "program.yaml"
    path.write_text("rewards: []\n")
    result = CliRunner().invoke(app, ["apply", str(path), "--simulate", "--from", "2026-10-01T00:00:00Z", "--to",
                                      "2026-11-01T00:00:00Z", "--key", "k"])
    assert result.exit_code == 2 and "no earning_rules section to simulate" in result.output


async def test_a_simulation_against_points_applies_nothing(empty_db: Callable[[str], Awaitable[str]]) -> None:
    await empty_db("points")
    now = datetime.now(UTC)
    start, end = (now - timedelta(days=2)).isoformat(), now.isoformat()
    async with service_client("points") as (points, client):
        assert (await client.post("/v1/earning-rules", json={
            "rule_id": "app", "kind": "multiplier", "factor": "2", "match": {"channels": ["app"]}})).status_code == 201
        assert (await client.put("/v1/members/M1", json={})).status_code == 201
        for index, (total, channel) in enumerate((("30.00", "app"), ("10.00", "pos"))):
            assert (await client.post("/v1/purchases", json={
                "purchase_id": f"p{index}", "member_id": "M1", "channel": channel, "currency": "USD",
                "total": total, "occurred_at": (now - timedelta(hours=index + 1)).isoformat(),
                "lines": [{"sku": "s", "category": "grocery", "quantity": 1, "unit_price": total}]})).status_code == 201
        rules_before = (await client.get("/v1/earning-rules")).json()
        printed: list[str] = []
        transport = httpx.ASGITransport(app=points)
        async with Api(Endpoints(points="http://points"), ADMIN_KEY, transport=transport) as api:
            answer = await simulate_program(api, parse_program(FILE), start, end, prune=True, echo=printed.append)
        assert (answer["current"]["points"], answer["proposed"]["points"]) == (60 + 10, 90 + 5 + 30)
        assert [line.split() for line in printed if line.startswith("app ")] == [["app", "removed", "30", "0", "-30"]]
        assert printed[-1] == "nothing applied (simulation)"
        assert (await client.get("/v1/earning-rules")).json() == rules_before
