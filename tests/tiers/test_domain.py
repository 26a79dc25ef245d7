"""The qualifying value and the tier evaluation: plain Python, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.tiers.domain.tiers import (
    DOWNGRADE,
    ENROLLED,
    TIERS_CHANGED,
    UPGRADE,
    Decision,
    Downgrade,
    Policy,
    PurchaseFacts,
    Standing,
    Tier,
    evaluate,
    ladder_problems,
    next_tier,
    qualifying_value,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
YEAR = timedelta(days=365)
D = Decimal
LADDER = (Tier("bronze", D(0)), Tier("silver", D(500), D("1.5")), Tier("gold", D(1000), D(2)))


def at(tier_id: str, *, retained_for: timedelta = YEAR, since: datetime = NOW - timedelta(days=30)) -> Standing:
    return Standing(tier_id, since, NOW + retained_for)


def decide(standing: Standing | None, value: str, downgrade: Downgrade = "to_qualified") -> Decision:
    return evaluate(standing, D(value), LADDER, Policy(downgrade, YEAR), NOW)


# --- the qualifying value ---------------------------------------------------------------------------


def test_value_sums_the_window_net_of_refunds() -> None:
    facts = [
        PurchaseFacts(NOW - timedelta(days=10), total=D("120.00"), refunded=D("20.00")),
        PurchaseFacts(NOW - timedelta(days=365), total=D("50.00")),  # on the window's first instant
        PurchaseFacts(NOW - timedelta(days=366), total=D("999.00")),  # left the window
    ]
    assert qualifying_value(facts, "spend", NOW - YEAR) == D("150.00")


def test_a_refund_above_its_purchase_does_not_eat_other_purchases() -> None:
    facts = [PurchaseFacts(NOW, total=D(10), refunded=D(15)), PurchaseFacts(NOW, total=D(30))]
    assert qualifying_value(facts, "spend", NOW - YEAR) == D(30)


def test_points_basis_counts_points_net_of_reversals() -> None:
    facts = [PurchaseFacts(NOW, total=D(100), points=150, points_reversed=50), PurchaseFacts(NOW, points=7)]
    assert qualifying_value(facts, "points", NOW - YEAR) == D(107)


# --- evaluation: each branch ------------------------------------------------------------------------


def test_a_new_member_starts_at_the_lowest_tier() -> None:
    decision = decide(None, "0")
    assert decision == Decision("bronze", 0, NOW, NOW + YEAR, ENROLLED)


def test_reaching_a_threshold_upgrades_at_once() -> None:
    assert decide(at("bronze"), "499.99").reason is None
    decision = decide(at("bronze"), "500")
    assert (decision.tier_id, decision.rank, decision.reason) == ("silver", 1, UPGRADE)
    assert decision.since == NOW and decision.retained_until == NOW + YEAR


def test_an_upgrade_may_skip_levels() -> None:
    assert decide(at("bronze"), "1000").tier_id == "gold"


def test_an_upgrade_never_shortens_retention() -> None:
    long_kept = at("silver", retained_for=2 * YEAR)
    assert decide(long_kept, "1000").retained_until == NOW + 2 * YEAR


def test_qualifying_again_pushes_retention_forward_only() -> None:
    soon = at("silver", retained_for=timedelta(days=10))
    decision = decide(soon, "600")
    assert decision.reason is None and decision.tier_id == "silver"
    assert decision.since == soon.since and decision.retained_until == NOW + YEAR
    later = at("silver", retained_for=2 * YEAR)
    assert decide(later, "600").retained_until == NOW + 2 * YEAR


@pytest.mark.parametrize("downgrade", ["to_qualified", "one_level", "never"])
def test_below_the_threshold_the_tier_is_kept_until_retention_ends(downgrade: Downgrade) -> None:
    standing = at("gold", retained_for=timedelta(seconds=1))
    assert decide(standing, "0", downgrade) == Decision("gold", 2, standing.since, standing.retained_until, None)


def test_to_qualified_drops_to_the_tier_the_window_supports() -> None:
    decision = decide(at("gold", retained_for=timedelta(0)), "600")  # retention ends at retained_until
    assert (decision.tier_id, decision.reason, decision.since) == ("silver", DOWNGRADE, NOW)
    assert decision.retained_until == NOW + YEAR
    assert decide(at("gold", retained_for=-YEAR), "0").tier_id == "bronze"


def test_one_level_steps_down_once_with_a_new_retention_period() -> None:
    decision = decide(at("gold", retained_for=-timedelta(days=1)), "0", "one_level")
    assert (decision.tier_id, decision.reason, decision.retained_until) == ("silver", DOWNGRADE, NOW + YEAR)
    assert decide(decision.standing, "0", "one_level").reason is None  # the new period holds


def test_never_keeps_the_tier() -> None:
    standing = at("gold", retained_for=-YEAR)
    assert decide(standing, "0", "never") == Decision("gold", 2, standing.since, standing.retained_until, None)


def test_a_member_still_qualifying_after_retention_is_renewed() -> None:
    decision = decide(at("silver", retained_for=-timedelta(days=1)), "700")
    assert decision.reason is None and decision.tier_id == "silver" and decision.retained_until == NOW + YEAR


def test_the_lowest_tier_has_nothing_to_drop_to() -> None:
    decision = decide(at("bronze", retained_for=-YEAR), "0", "one_level")
    assert decision.reason is None and decision.retained_until == NOW + YEAR


def test_a_tier_that_is_gone_maps_to_the_tier_the_window_supports() -> None:
    decision = decide(at("platinum"), "700")
    assert (decision.tier_id, decision.reason) == ("silver", TIERS_CHANGED)
    assert decide(at("platinum"), "0").tier_id == "bronze"


def test_an_empty_ladder_is_refused() -> None:
    with pytest.raises(ValueError):
        evaluate(None, D(0), (), Policy(), NOW)


# --- the ladder -------------------------------------------------------------------------------------


def test_a_good_ladder_has_no_problems() -> None:
    assert ladder_problems(LADDER, "spend") == []
    assert next_tier(LADDER, "bronze") == LADDER[1] and next_tier(LADDER, "gold") is None
    assert next_tier(LADDER, "gone") is None


def test_ladder_problems_name_the_tier_and_field() -> None:
    bad = (Tier("a", D(5)), Tier("b", D(5)), Tier("a", D("7.5")))
    assert [(i, f) for i, f, _ in ladder_problems(bad, "spend")] == [(0, "threshold"), (1, "threshold"),
                                                                     (2, "tier_id")]
    assert [(i, f) for i, f, _ in ladder_problems(bad, "points")][-1] == (2, "threshold")


# --- properties -------------------------------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=100_000, places=2)
moments = st.integers(min_value=-800, max_value=800).map(lambda d: NOW + timedelta(days=d))


@st.composite
def ladders(draw: st.DrawFn) -> tuple[Tier, ...]:
    steps = draw(st.lists(st.integers(min_value=1, max_value=5000), max_size=5))
    thresholds = [0]
    for step in steps:
        thresholds.append(thresholds[-1] + step)
    return tuple(Tier(f"t{i}", D(t), D(1) + i) for i, t in enumerate(thresholds))


@st.composite
def standings(draw: st.DrawFn, ladder: tuple[Tier, ...]) -> Standing | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    tier_id = draw(st.sampled_from([t.tier_id for t in ladder] + ["gone"]))
    return Standing(tier_id, draw(moments), draw(moments))


policies = st.builds(
    Policy, st.sampled_from(["to_qualified", "one_level", "never"]),
    st.integers(min_value=1, max_value=3650).map(lambda d: timedelta(days=d)),
)


@given(st.lists(st.tuples(moments, amounts, amounts, st.integers(0, 10**6), st.integers(0, 10**6))), moments)
def test_the_qualifying_value_is_never_negative(
    facts: list[tuple[datetime, Decimal, Decimal, int, int]], window_start: datetime
) -> None:
    purchases = [PurchaseFacts(when, total, refunded, points, reversed_) for when, total, refunded, points, reversed_
                 in facts]
    assert qualifying_value(purchases, "spend", window_start) >= 0
    assert qualifying_value(purchases, "points", window_start) >= 0


@given(st.data(), ladders(), amounts, amounts, policies)
def test_a_higher_value_never_gives_a_lower_tier_or_a_shorter_retention(
    data: st.DataObject, ladder: tuple[Tier, ...], low: Decimal, extra: Decimal, policy: Policy
) -> None:
    standing = data.draw(standings(ladder))
    lower = evaluate(standing, low, ladder, policy, NOW)
    higher = evaluate(standing, low + extra, ladder, policy, NOW)
    assert higher.rank >= lower.rank
    assert higher.retained_until >= lower.retained_until
    if standing is not None:
        assert lower.retained_until >= standing.retained_until


@given(st.data(), ladders(), amounts, policies)
def test_evaluating_again_at_the_same_moment_changes_nothing(
    data: st.DataObject, ladder: tuple[Tier, ...], value: Decimal, policy: Policy
) -> None:
    first = evaluate(data.draw(standings(ladder)), value, ladder, policy, NOW)
    again = evaluate(first.standing, value, ladder, policy, NOW)
    assert again.reason is None and again.standing == first.standing
    assert ladder[first.rank].tier_id == first.tier_id
