"""Segmentation: RFM quintiles, value classes, lifecycle, CLV and the Pareto share. Plain Python, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.tiers.domain.segments import (
    CLASS_BOUNDS,
    VALUE_CLASSES,
    History,
    MemberFacts,
    Params,
    Purchase,
    clv_estimate,
    expected_lifetime_years,
    lifecycle,
    pareto_share,
    quintile_scores,
    retention_rate,
    segment_all,
    summarize,
    value_classes,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PARAMS = Params(window_days=365, recency_days=90, new_days=30)
D = Decimal


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def bought(*days_ago: float, net: str = "10") -> list[Purchase]:
    return [Purchase(ago(days), D(net)) for days in days_ago]


def history(*days_ago: float, net: str = "10") -> History:
    return summarize(bought(*days_ago, net=net), NOW, PARAMS)


# --- quintile scores --------------------------------------------------------------------------------


def test_ten_distinct_values_score_two_per_quintile() -> None:
    assert quintile_scores([7, 1, 9, 3, 5, 2, 8, 4, 10, 6]) == [4, 1, 5, 2, 3, 1, 4, 2, 5, 3]


def test_ties_share_the_score_of_the_first_position_of_their_value() -> None:
    # sorted: 1 1 1 1 | 5 5 | 9 9 9 9 -> below: 0 for the 1s, 4 for the 5s, 6 for the 9s (n = 10)
    assert quintile_scores([5, 1, 9, 1, 9, 1, 5, 9, 1, 9]) == [3, 1, 4, 1, 4, 1, 3, 4, 1, 4]


def test_all_equal_values_score_1_and_a_single_member_too() -> None:
    assert quintile_scores([D(3)] * 7) == [1] * 7
    assert quintile_scores([42]) == [1]
    assert quintile_scores([]) == []


def test_small_bases_spread_over_the_scale() -> None:
    assert quintile_scores([1, 2, 3]) == [1, 2, 4]
    assert quintile_scores([2, 1]) == [3, 1]


@given(st.lists(st.integers(-50, 50), min_size=1, max_size=200))
def test_scores_are_1_to_5_and_a_better_value_never_scores_lower(values: list[int]) -> None:
    scores = quintile_scores(values)
    assert all(1 <= s <= 5 for s in scores)
    for (v1, s1) in zip(values, scores, strict=True):
        for (v2, s2) in zip(values, scores, strict=True):
            if v1 > v2:
                assert s1 >= s2
            if v1 == v2:
                assert s1 == s2


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=100), st.randoms())
def test_scores_do_not_depend_on_the_order_of_members(values: list[int], random: Random) -> None:
    shuffled = list(values)
    random.shuffle(shuffled)
    by_value = dict(zip(values, quintile_scores(values), strict=True))
    assert [by_value[v] for v in shuffled] == quintile_scores(shuffled)


# --- value classes ----------------------------------------------------------------------------------


def test_value_classes_by_where_the_cumulative_share_starts() -> None:
    # total 100: starts at 0 (A), 40 (A: straddles 50), 60 (B), 75 (B: straddles 80), 85 (C), 92 (C), 92 (C)
    revenues = [D(v) for v in ("40", "20", "15", "10", "7", "4", "4")]
    assert value_classes(revenues) == ["A", "A", "B", "B", "C", "C", "C"]
    shuffled = [revenues[i] for i in (6, 2, 0, 5, 1, 3, 4)]
    assert value_classes(shuffled) == ["C", "B", "A", "C", "A", "B", "C"]


def test_equal_revenues_start_together() -> None:
    # one after the other the 20s would start at 60% (B) and 80% (C); together they both start at 60%
    assert value_classes([D(20), D(60), D(20)]) == ["B", "A", "B"]
    assert value_classes([D(93), D(3), D(2), D(2)]) == ["A", "C", "D", "D"]


def test_members_without_revenue_are_d_and_a_program_without_revenue_is_all_d() -> None:
    assert value_classes([D(0), D(10), D(-5)]) == ["D", "A", "D"]
    assert value_classes([D(0), D(0)]) == ["D", "D"]
    assert value_classes([]) == []


def test_one_big_buyer_is_a_and_the_rest_follow_their_share() -> None:
    assert value_classes([D(1000), D(1), D(1)]) == ["A", "D", "D"]
    assert value_classes([D(50), D(30), D(15), D(5)]) == ["A", "B", "C", "D"]


revenue_lists = st.lists(st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False), min_size=1,
                         max_size=60)


@given(revenue_lists)
def test_more_revenue_never_gives_a_worse_class(revenues: list[Decimal]) -> None:
    classes = value_classes(revenues)
    rank = {c: i for i, c in enumerate(VALUE_CLASSES)}
    for r1, c1 in zip(revenues, classes, strict=True):
        for r2, c2 in zip(revenues, classes, strict=True):
            if r1 > r2:
                assert rank[c1] <= rank[c2]
            if r1 == r2:
                assert c1 == c2


@given(revenue_lists)
def test_class_shares_are_consistent(revenues: list[Decimal]) -> None:
    """Classes A.. up to each bound hold at least that share of revenue, and every member of a later class
    starts at or past the bound (so without the last group a class would hold less)."""
    classes = value_classes(revenues)
    total = sum(revenues, D(0))
    if total == 0:
        assert set(classes) == {"D"}
        return
    for index, (_, bound) in enumerate(CLASS_BOUNDS):
        upto = set(VALUE_CLASSES[: index + 1])
        held = sum((r for r, c in zip(revenues, classes, strict=True) if c in upto), D(0))
        assert held >= bound * total
        for r, c in zip(revenues, classes, strict=True):
            if c not in upto and r > 0:
                start = sum((other for other in revenues if other > r), D(0))
                assert start >= bound * total
    assert all(c == "D" for r, c in zip(revenues, classes, strict=True) if r == 0)


# --- Pareto -----------------------------------------------------------------------------------------


def test_pareto_share_of_the_top_fifth() -> None:
    assert pareto_share([D(v) for v in (50, 20, 10, 10, 5, 5, 0, 0, 0, 0)]) == D("0.7")
    assert pareto_share([D(10)] * 5) == D("0.2")


def test_pareto_counts_the_member_at_the_mark_in_part() -> None:
    # 3 members: the top 0.6 member is 60% of the biggest one
    assert pareto_share([D(60), D(30), D(10)]) == D("0.36")
    assert pareto_share([D(7)]) == D("0.2")


def test_pareto_without_revenue_is_none() -> None:
    assert pareto_share([]) is None
    assert pareto_share([D(0), D(0)]) is None


@given(st.lists(st.decimals(min_value=D("0.01"), max_value=10_000, places=2, allow_nan=False), min_size=1,
                max_size=200))
def test_pareto_share_is_between_a_fifth_and_all(revenues: list[Decimal]) -> None:
    share = pareto_share(revenues)
    assert share is not None and D("0.2") <= share <= 1


# --- lifecycle --------------------------------------------------------------------------------------


def at(enrolled_days_ago: float, *days_ago: float) -> str:
    return lifecycle(ago(enrolled_days_ago), history(*days_ago), NOW, PARAMS)


def test_new_members_enrolled_lately_with_at_most_one_purchase() -> None:
    assert at(10) == "new"
    assert at(10, 2) == "new"
    assert at(30, 2) == "new"
    assert at(10, 2, 1) == "active", "two purchases: no longer new"
    assert at(31, 2) == "active"


def test_by_the_last_purchase_against_the_threshold() -> None:
    assert at(400, 150, 90) == "active"
    assert at(400, 150, 91) == "at_risk"
    assert at(400, 150, 180) == "at_risk"
    assert at(400, 300, 181) == "lapsed"


def test_a_purchase_after_a_lapse_wins_the_member_back_for_a_threshold() -> None:
    assert at(700, 600, 400, 10) == "won_back", "390 days of silence, then a purchase"
    assert at(700, 600, 400, 80, 5) == "won_back", "back 80 days ago and buying since"
    assert at(700, 600, 400, 95, 5) == "active", "back more than 90 days ago: active again"
    assert at(700, 600, 420, 241, 62) == "active", "gaps of 180 and 179 days are no lapse"
    assert at(700, 600, 400, 100) == "at_risk", "won back, then silent past the threshold"


def test_members_who_never_bought_are_measured_from_the_enrolment() -> None:
    assert at(31) == "at_risk"
    assert at(180) == "at_risk"
    assert at(181) == "lapsed"


def test_a_fully_refunded_purchase_does_not_count() -> None:
    refunded = [*bought(10, net="0"), *bought(200)]
    assert summarize(refunded, NOW, PARAMS).purchases == 1
    assert lifecycle(ago(400), summarize(refunded, NOW, PARAMS), NOW, PARAMS) == "lapsed"


def test_the_threshold_is_a_setting() -> None:
    params = Params(recency_days=30)
    assert lifecycle(ago(400), summarize(bought(300, 45), NOW, params), NOW, params) == "at_risk"
    assert lifecycle(ago(400), summarize(bought(300, 61), NOW, params), NOW, params) == "lapsed"


# --- history, CLV -----------------------------------------------------------------------------------


def test_summarize_keeps_what_segments_need() -> None:
    got = summarize([Purchase(ago(500), D("30")), Purchase(ago(10), D("25.50")), Purchase(ago(100), D("4.50")),
                     Purchase(ago(1), D("0"))], NOW, PARAMS)
    assert got == History(purchases=3, last_at=ago(10), returned_at=ago(100), window_purchases=2,
                          window_revenue=D("30.00"), bought_in_window=True, bought_in_previous_window=True)
    assert summarize([], NOW, PARAMS) == History()
    ahead = summarize([Purchase(NOW + timedelta(hours=2), D(5))], NOW, PARAMS)
    assert ahead.window_purchases == 1, "a till clock running ahead still counts"


def test_retention_is_the_share_of_last_windows_buyers_who_bought_again() -> None:
    histories = [history(400, 10), history(400), history(500, 20), history(20), History()]
    assert retention_rate(histories) == D(2) / D(3)
    assert retention_rate([history(20)]) is None


def test_expected_lifetime_is_r_over_1_minus_r_capped() -> None:
    assert expected_lifetime_years(D("0.5")) == 1
    assert expected_lifetime_years(D("0.75")) == 3
    assert expected_lifetime_years(D(0)) == 0
    assert expected_lifetime_years(D(1)) == 19, "capped at 0.95"
    assert expected_lifetime_years(None) == 1, "no previous window: one more year"


def test_clv_is_order_value_times_yearly_frequency_times_lifetime() -> None:
    # 4 orders of 25 in a 365-day window: AOV 25 x 4 a year x 3 years
    assert clv_estimate(history(300, 200, 100, 5, net="25"), D(3), PARAMS) == D("300.00")
    # a 730-day window halves the yearly frequency
    two_years = Params(window_days=730)
    assert clv_estimate(summarize(bought(600, 5, net="25"), NOW, two_years), D(3), two_years) == D("75.00")
    assert clv_estimate(history(500), D(3), PARAMS) == D("0.00"), "nothing in the window"


# --- a whole run ------------------------------------------------------------------------------------


def member(member_id: str, *days_ago: float, net: str = "10", status: str | None = "active",
           enrolled: float = 800) -> MemberFacts:
    return MemberFacts(member_id, status, ago(enrolled), history(*days_ago, net=net))


def test_a_run_scores_the_base_and_leaves_the_rest_at_1_and_d() -> None:
    members = [
        member("big", 400, 30, 20, 10, net="100"),  # window: 3 purchases, 300; back after 370 days of silence
        member("mid", 200, 60, net="50"),  # window: 2 purchases, 100
        member("small", 5, net="50"),  # window: 1 purchase, 50; the latest
        member("old", 500, net="100"),  # nothing in the window
        member("none", enrolled=10),  # never bought: not scored
        member("closed", 10, net="1000", status="closed"),
    ]
    segments, overview = segment_all(members, NOW, PARAMS)
    rfm = {m: (s.recency, s.frequency, s.monetary, s.value_class) for m, s in segments.items()}
    # a base of 4, ranked old < mid < big < small by last purchase, old < small < mid < big by frequency and
    # monetary; below 0, 1, 2, 3 scores 1, 2, 3, 4
    assert rfm["old"] == (1, 1, 1, "D")
    assert rfm["mid"] == (2, 3, 3, "B"), "starts at 300 of 450 (67%)"
    assert rfm["big"] == (3, 4, 4, "A")
    assert rfm["small"] == (4, 2, 2, "C"), "starts at 400 of 450 (89%)"
    assert rfm["none"] == (1, 1, 1, "D") and rfm["closed"] == (1, 1, 1, "D")
    lifecycles = {m: s.lifecycle for m, s in segments.items()}
    assert lifecycles == {"big": "won_back", "mid": "active", "small": "active", "old": "lapsed", "none": "new",
                          "closed": "active"}
    # retention: of the previous window's buyers (big, old) big bought again: r = 1/2, one more year
    assert overview.retention_rate == D("0.5") and overview.expected_lifetime_years == 1
    clv = {m: s.clv_estimate for m, s in segments.items()}
    assert clv == {"big": D("300.00"), "mid": D("100.00"), "small": D("50.00"), "old": 0, "none": 0, "closed": 0}
    assert overview.scored == 4 and overview.revenue == 450
    # top 20% of 4 members = 0.8 of "big": 240 of 450
    assert overview.top_20pct_revenue_share == D(240) / D(450)


@pytest.mark.parametrize("status", ["suspended", "closed"])
def test_suspended_and_closed_members_leave_the_base(status: str) -> None:
    segments, overview = segment_all([member("a", 5, status=status), member("b", 5)], NOW, PARAMS)
    assert segments["a"].value_class == "D" and segments["b"].value_class == "A"
    assert overview.scored == 1
