"""`loyalty demo` against the running services: a small generated program ends with tiers, segments and
analytics that show real figures, and running it again the same day changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ops.demo_data import generate
from tests.system.cli_support import loyalty
from tests.system.harness import System

pytestmark = pytest.mark.system


def test_demo_fills_tiers_segments_and_analytics(system: System) -> None:
    result = loyalty(system, "demo", "--members", "80", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "segments computed for 80 members" in result.output
    # One campaign of each kind, with its figures.
    assert "demo-win-back treated:" in result.output and "demo-win-back control:" in result.output
    assert "uplift of spend per member:" in result.output
    assert "goals settled:" in result.output and "simulation, pastry triple" in result.output

    with system.client("tiers") as tiers:
        summary = tiers.get("/v1/analytics/summary").json()
        assert summary["members"] == 80
        assert sum(summary["by_tier"].values()) == 80
        assert len([n for n in summary["by_tier"].values() if n]) >= 2  # heavy buyers climbed
        assert sum(summary["by_value_class"].values()) == 80
        assert {"active", "lapsed"} <= {name for name, n in summary["by_lifecycle"].items() if n}
        assert summary["pareto"]["top_20pct_revenue_share"] > 0.4
        assert summary["points_liability"] > 0
        segment = tiers.get("/v1/members/demo-00001/segment").json()
        assert segment["computed_at"] is not None
    with system.client("rewards") as rewards:
        settled = [rewards.get(f"/v1/redemptions/{body['redemption_id']}", params={"wait": 10}).json()["status"]
                   for body in generate(80, 3, datetime.now(UTC)).redemptions]
        assert settled and "confirmed" in settled and "pending" not in settled
        catalog = rewards.get("/v1/rewards").json()["items"]
        assert {r["reward_id"] for r in catalog} >= {"demo-free-coffee", "demo-mug"}

    with system.client("points") as points:
        balance_before = points.get("/v1/members/demo-00001/balance").json()
    again = loyalty(system, "demo", "--members", "80", "--seed", "3")
    assert again.exit_code == 0, again.output
    assert "  no changes" in again.output
    with system.client("points") as points:
        balance_after = points.get("/v1/members/demo-00001/balance").json()
    assert balance_after["lifetime_earned"] == balance_before["lifetime_earned"]
