"""The dashboard's pure figures: ISO weeks, weekly series, the Pareto curve. No database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from services.tiers.domain import figures, segments


def test_a_week_is_named_by_its_monday_in_utc() -> None:
    assert figures.week_of(datetime(2026, 11, 24, 12, tzinfo=UTC)) == date(2026, 11, 23)
    assert figures.week_of(datetime(2026, 11, 23, 0, 0, tzinfo=UTC)) == date(2026, 11, 23)
    assert figures.week_of(datetime(2026, 11, 29, 23, 59, tzinfo=UTC)) == date(2026, 11, 23)
    # Monday 01:00 in Berlin is still Sunday in UTC
    berlin = timezone(timedelta(hours=1))
    assert figures.week_of(datetime(2026, 11, 30, 0, 30, tzinfo=berlin)) == date(2026, 11, 23)


def test_week_labels_follow_the_iso_year() -> None:
    assert figures.week_label(date(2026, 11, 23)) == "2026-W48"
    assert figures.week_label(date(2026, 12, 28)) == "2026-W53"
    assert figures.week_label(date(2024, 12, 30)) == "2025-W01"  # the Monday of ISO 2025's first week


def test_weekly_points_cover_the_last_weeks_with_zeros_where_nothing_moved() -> None:
    until = datetime(2026, 11, 25, 9, tzinfo=UTC)
    rows = [
        (date(2026, 11, 23), "issued", 500), (date(2026, 11, 23), "spent", 120),
        (date(2026, 11, 9), "expired", 30), (date(2026, 11, 9), "issued", 70),
        (date(2026, 10, 26), "issued", 999),  # before the four weeks shown
        (date(2026, 11, 23), "adjusted", 5),  # not a kind the dashboard shows
    ]
    weeks = figures.weekly_points(rows, until, 4)
    assert [w.week for w in weeks] == [date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16), date(2026, 11, 23)]
    assert [w.label for w in weeks] == ["2026-W45", "2026-W46", "2026-W47", "2026-W48"]
    assert [(w.issued, w.spent, w.expired) for w in weeks] == [(0, 0, 0), (70, 0, 30), (0, 0, 0), (500, 120, 0)]


def test_the_pareto_curve_is_the_lorenz_curve_of_revenue_highest_first() -> None:
    revenues = [Decimal(v) for v in ("100", "1600", "600", "200")]
    curve = {p.members_share: p.revenue_share for p in figures.pareto_curve(revenues)}
    assert len(curve) == figures.CURVE_STEPS + 1
    assert curve[Decimal(0)] == 0
    assert curve[Decimal("0.2")] == Decimal("0.512")  # 0.8 of the top member: 1280 of 2500
    assert curve[Decimal("0.25")] == Decimal("0.64")
    assert curve[Decimal("0.5")] == Decimal("0.88")
    assert curve[Decimal("0.75")] == Decimal("0.96")
    assert curve[Decimal(1)] == 1


def test_no_revenue_no_curve_and_negative_revenue_counts_as_none() -> None:
    assert figures.pareto_curve([]) == []
    assert figures.pareto_curve([Decimal(0), Decimal("-5")]) == []
    curve = figures.pareto_curve([Decimal(10), Decimal(-10)])
    assert curve[-1].revenue_share == 1 and curve[figures.CURVE_STEPS // 2].revenue_share == 1


revenue_lists = st.lists(st.decimals(min_value=-50, max_value=10_000, places=2), min_size=1, max_size=60)


@given(revenue_lists)
def test_the_curve_rises_from_0_to_1_and_meets_the_pareto_share_at_20_percent(revenues: list[Decimal]) -> None:
    curve = figures.pareto_curve(revenues)
    share = segments.pareto_share(revenues)
    if share is None:
        assert curve == []
        return
    shares = [p.revenue_share for p in curve]
    assert shares[0] == 0 and shares[-1] == 1
    assert all(a <= b for a, b in pairwise(shares))
    assert curve[4].members_share == Decimal("0.2") and curve[4].revenue_share == share
    # the top members make at least their share of revenue (the curve is on or above the diagonal)
    assert all(p.revenue_share >= p.members_share for p in curve)


def test_percent_prints_one_decimal_and_a_dash_for_none() -> None:
    assert figures.percent(Decimal("0.512")) == "51.2%"
    assert figures.percent(0.96) == "96.0%"
    assert figures.percent(None) == "\u2014"
