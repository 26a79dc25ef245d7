"""`loyalty apply`'s pure half: file validation with the place of each problem, and the plan of changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ops.program import (
    Current,
    ProgramFileError,
    load_program,
    parse_program,
    plan_changes,
)
from tests.support import ROOT

BASE = """
program: {currency: USD, points_per_unit: "1", expiry_days: 365, pending_days: 0}
earning_rules:
  - {rule_id: pastry, kind: multiplier, factor: "2", match: {categories: [pastry]}}
  - {rule_id: welcome, kind: bonus, trigger: first_purchase, points: 50, valid_until: "2027-01-01T00:00:00Z"}
tiers:
  tiers:
    - {tier_id: green, name: Green, threshold: "0", earn_multiplier: "1"}
    - {tier_id: gold, name: Gold, threshold: "800", earn_multiplier: "1.5"}
rewards:
  - {reward_id: coffee, name: Coffee, points_cost: 150}
"""


def current_as_applied(text: str = BASE) -> Current:
    """The state the API would answer after applying ``text``, spelled as the API spells it."""
    desired = parse_program(text)
    assert desired.program and desired.tiers
    return Current(
        program=desired.program.model_copy(update={"points_per_unit": desired.program.points_per_unit + 0}),
        rules={r.rule_id: r for r in desired.earning_rules or ()},
        tiers=desired.tiers,
        rewards={r.reward_id: r for r in desired.rewards or ()},
    )


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ProgramFileError) as caught:
        parse_program(text, "p.yaml")
    return caught.value.problems


class TestValidation:
    def test_examples_are_valid(self) -> None:
        for name in ("coffee-shop.yaml", "dealer-network.yaml"):
            program = load_program(ROOT / "examples" / name)
            assert program.program and program.earning_rules and program.tiers and program.rewards

    def test_a_bad_field_is_named_by_its_path(self) -> None:
        text = BASE.replace('factor: "2"', 'factor: "-2"')
        [(path, message)] = problems(text)
        assert path == "earning_rules[0].factor"
        assert "greater than 0" in message

    def test_the_message_names_the_file(self) -> None:
        with pytest.raises(ProgramFileError, match=r"^p.yaml: tiers.tiers\[1\].threshold: "):
            parse_program(BASE.replace('threshold: "800"', 'threshold: "lots"'), "p.yaml")

    def test_unknown_fields_and_sections_are_refused(self) -> None:
        assert problems(BASE + "\nloyalty: yes\n")[0][0] == "loyalty"
        assert problems(BASE.replace("points_cost: 150", "points_cost: 150, colour: red"))[0][0] == "rewards[0].colour"

    def test_duplicate_ids_are_refused(self) -> None:
        text = BASE + "  - {reward_id: coffee, name: Again, points_cost: 1}\n"
        assert "'coffee' appears twice" in problems(text)[0][1]

    def test_broken_yaml_points_at_the_line(self) -> None:
        [(where, message)] = problems("program: {currency: USD\nrewards: [")
        assert where.startswith("line ")
        assert "not valid YAML" in message

    def test_a_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ProgramFileError, match=r"missing\.yaml"):
            load_program(tmp_path / "missing.yaml")


class TestPlan:
    def test_nothing_to_do_when_the_server_has_the_file(self) -> None:
        plan = plan_changes(parse_program(BASE), current_as_applied())
        assert plan.changes == [] and plan.kept == [] and plan.conflicts == []

    def test_amounts_and_moments_compare_by_value_not_spelling(self) -> None:
        respelled = (BASE.replace('points_per_unit: "1"', 'points_per_unit: "1.000"')
                     .replace('"2027-01-01T00:00:00Z"', '"2027-01-01T01:00:00+01:00"')
                     .replace('threshold: "800"', "threshold: 800.00"))
        assert plan_changes(parse_program(respelled), current_as_applied()).changes == []

    def test_an_empty_server_gets_everything_created(self) -> None:
        plan = plan_changes(parse_program(BASE), Current(None, {}, None, {}))
        assert [(c.section, c.key, c.action, c.method, c.path) for c in plan.changes] == [
            ("program", "", "update", "PUT", "/v1/program"),
            ("earning rule", "pastry", "create", "POST", "/v1/earning-rules"),
            ("earning rule", "welcome", "create", "POST", "/v1/earning-rules"),
            ("tiers", "", "update", "PUT", "/v1/tiers"),
            ("reward", "coffee", "create", "PUT", "/v1/rewards/coffee"),
        ]
        assert plan.changes[1].body == {"rule_id": "pastry", "kind": "multiplier", "factor": "2",
                                        "match": {"categories": ["pastry"]}}

    def test_a_changed_field_is_the_only_write_and_shows_old_and_new(self) -> None:
        text = BASE.replace('threshold: "800"', 'threshold: "900"')
        [change] = plan_changes(parse_program(text), current_as_applied()).changes
        assert (change.section, change.method, change.path) == ("tiers", "PUT", "/v1/tiers")
        assert change.fields == {"tiers[1].threshold": ("800", "900")}
        assert "tiers[1].threshold: 800 -> 900" in change.describe()

    def test_a_rule_is_patched_with_only_its_definition_and_cleared_fields_set_to_null(self) -> None:
        text = BASE.replace(', valid_until: "2027-01-01T00:00:00Z"', "").replace("points: 50", "points: 75")
        [change] = plan_changes(parse_program(text), current_as_applied()).changes
        assert (change.method, change.path) == ("PATCH", "/v1/earning-rules/welcome")
        assert change.body == {"points": 75, "trigger": "first_purchase", "valid_until": None}
        assert set(change.fields) == {"points", "valid_until"}

    def test_changing_a_rules_kind_is_a_conflict_not_a_write(self) -> None:
        text = BASE.replace('{rule_id: pastry, kind: multiplier, factor: "2", match: {categories: [pastry]}}',
                            "{rule_id: pastry, kind: bonus, trigger: enrollment, points: 5}")
        plan = plan_changes(parse_program(text), current_as_applied())
        assert plan.changes == []
        assert plan.conflicts and "never reused" in plan.conflicts[0]

    def test_what_the_file_leaves_out_is_kept_unless_pruned(self) -> None:
        current = current_as_applied(BASE + "  - {reward_id: old-mug, name: Mug, points_cost: 900}\n")
        current.rules["summer"] = parse_program(
            'earning_rules: [{rule_id: summer, kind: bonus, trigger: enrollment, points: 5}]').earning_rules[0]  # type: ignore[index]
        kept = plan_changes(parse_program(BASE), current)
        assert kept.changes == [] and kept.kept == ["earning rule summer", "reward old-mug"]
        pruned = plan_changes(parse_program(BASE), current, prune=True)
        assert [(c.key, c.action, c.method) for c in pruned.changes] == [
            ("summer", "delete", "DELETE"), ("old-mug", "deactivate", "PUT")]
        body: dict[str, Any] = pruned.changes[1].body
        assert body["active"] is False and body["points_cost"] == 900

    def test_sections_left_out_are_not_managed(self) -> None:
        plan = plan_changes(parse_program("rewards: []"), current_as_applied())
        assert plan.changes == [] and plan.kept == ["reward coffee"]
