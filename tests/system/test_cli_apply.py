"""`loyalty apply` against the running services: dry run writes nothing, apply makes the program what the
file says, a second apply makes no writes, a changed field is the only write, bad input is shown clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT
from tests.system.cli_support import loyalty
from tests.system.harness import System

pytestmark = pytest.mark.system

EXAMPLE = ROOT / "examples" / "coffee-shop.yaml"


def snapshot(system: System) -> dict[str, Any]:
    """Everything apply may write, with the services' own updated_at stamps (a write moves them)."""
    with system.client("points") as points, system.client("tiers") as tiers, \
            system.client("rewards") as rewards:
        return {
            "program": points.get("/v1/program").json(),
            "rules": points.get("/v1/earning-rules", params={"limit": 500}).json()["items"],
            "tiers": tiers.get("/v1/tiers").json(),
            "rewards": rewards.get("/v1/rewards", params={"limit": 500}).json()["items"],
        }


def test_dry_run_shows_the_changes_and_writes_nothing(system: System) -> None:
    snapshot(system)  # points stores its default program at the first read and spells it "1.0000" after
    before = snapshot(system)
    result = loyalty(system, "apply", str(EXAMPLE), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "earning rule pastry-double: create" in result.output
    assert "reward tasting-evening: create" in result.output
    assert "(dry run)" in result.output
    assert snapshot(system) == before


def test_apply_then_apply_again_changes_nothing(system: System) -> None:
    first = loyalty(system, "apply", str(EXAMPLE))
    assert first.exit_code == 0, first.output
    assert "changes made" in first.output
    applied = snapshot(system)
    assert applied["program"]["excluded_categories"] == ["gift-card"]
    assert applied["program"]["referral"]["referrer_points"] == 200
    assert [r["rule_id"] for r in applied["rules"]] == sorted(
        ["pastry-double", "beans-weekend", "app-orders", "welcome", "birthday-treat", "big-basket",
         "win-back-january", "vip-weekends", "newcomer-basket", "coffee-card"])
    assert {r["rule_id"]: r["audience"] for r in applied["rules"]}["vip-weekends"] == {"value_classes": ["A"]}
    assert {r["rule_id"]: r["reward"] for r in applied["rules"]}["coffee-card"] == {"reward_id": "free-coffee"}
    assert {r["rule_id"]: r["holdout_pct"] for r in applied["rules"]}["win-back-january"] == 10
    assert [t["tier_id"] for t in applied["tiers"]["tiers"]] == ["green", "silver", "gold", "platinum"]
    assert {r["reward_id"]: r["min_tier"] for r in applied["rewards"]}["tasting-evening"] == "gold"

    again = loyalty(system, "apply", str(EXAMPLE))
    assert again.exit_code == 0, again.output
    assert again.output.strip() == "no changes"
    assert snapshot(system) == applied  # not one updated_at moved


def test_a_changed_field_is_the_only_write(system: System, tmp_path: Path) -> None:
    loyalty(system, "apply", str(EXAMPLE))
    before = snapshot(system)
    edited = tmp_path / "edited.yaml"
    edited.write_text(EXAMPLE.read_text().replace("points_cost: 150", "points_cost: 175"))
    result = loyalty(system, "apply", str(edited))
    assert result.exit_code == 0, result.output
    assert "reward free-coffee: update\n    points_cost: 150 -> 175" in result.output
    assert "1 changes made" in result.output
    after = snapshot(system)
    changed = [r for r in after["rewards"] if r not in before["rewards"]]
    assert [(r["reward_id"], r["points_cost"]) for r in changed] == [("free-coffee", 175)]
    assert {k: v for k, v in after.items() if k != "rewards"} == {k: v for k, v in before.items() if k != "rewards"}
    loyalty(system, "apply", str(EXAMPLE))  # back as the file says, for the tests after this one


def test_a_bad_file_names_the_field_and_writes_nothing(system: System, tmp_path: Path) -> None:
    before = snapshot(system)
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace('factor: "1.5"', 'factor: "0"'))
    result = loyalty(system, "apply", str(bad))
    assert result.exit_code == 2
    assert f"{bad}: earning_rules[2].factor: Input should be greater than 0" in result.output
    assert snapshot(system) == before


def test_api_problems_are_shown_with_their_reason(system: System) -> None:
    result = loyalty(system, "apply", str(EXAMPLE), key="not-a-key")
    assert result.exit_code == 1
    assert ": 401 unauthorized: " in result.output


def test_the_dealer_network_example_applies_over_the_coffee_shop_with_prune(system: System) -> None:
    dealer = ROOT / "examples" / "dealer-network.yaml"
    result = loyalty(system, "apply", str(dealer), "--prune")
    assert result.exit_code == 0, result.output
    assert "earning rule pastry-double: delete" in result.output
    assert "reward free-coffee: deactivate" in result.output
    state = snapshot(system)
    assert state["program"]["currency"] == "EUR"
    assert {r["rule_id"]: r["kind"] for r in state["rules"]}["quarterly-rebate"] == "goal"
    assert {r["reward_id"] for r in state["rewards"] if r["active"]} == {
        "service-training", "display-stand", "marketing-fund", "factory-visit"}
    assert loyalty(system, "apply", str(dealer), "--prune").output.strip() == "no changes"
