"""Earning arithmetic, refund reversal and lot order: plain Python, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from services.points.domain import (
    Audience,
    BonusRule,
    Earning,
    Limits,
    Line,
    LotState,
    MemberFacts,
    MultiplierRule,
    PurchaseFacts,
    Window,
    allowance,
    capped,
    compute_earning,
    period_key,
    reversal_for_refund,
    take_from_lots,
    within_limits,
)

WEDNESDAY = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
D = Decimal


def buy(*lines: Line, store: str = "s-1", channel: str = "pos", at: datetime = WEDNESDAY) -> PurchaseFacts:
    return PurchaseFacts(lines=lines, occurred_at=at, store_id=store, channel=channel)


def test_base_rate_floors_the_total() -> None:
    earning = compute_earning(buy(Line(D("12.99"))), points_per_unit=D(1))
    assert earning.points == 12 and earning.breakdown == [("base", 12)]


def test_excluded_categories_earn_nothing() -> None:
    purchase = buy(Line(D("20"), "grocery"), Line(D("9.50"), "tobacco"))
    earning = compute_earning(purchase, points_per_unit=D(2), excluded_categories={"tobacco"})
    assert earning.points == 40


def test_multiplier_applies_to_matching_lines_and_is_named_in_the_breakdown() -> None:
    double_coffee = MultiplierRule("coffee-x2", D(2), categories=frozenset({"coffee"}))
    purchase = buy(Line(D("10"), "coffee"), Line(D("5"), "bakery"))
    earning = compute_earning(purchase, points_per_unit=D(1), multipliers=[double_coffee],
                              tier_multiplier=D("1.5"))
    assert earning.breakdown == [("base", 15), ("coffee-x2", 10), ("tier", 12)]
    assert earning.points == 37 and earning.rule_ids == ["coffee-x2"]


def test_multiplier_criteria_must_all_match() -> None:
    web_store_9 = MultiplierRule("web-9", D(3), stores=frozenset({"s-9"}), channels=frozenset({"web"}))
    assert compute_earning(buy(Line(D("10")), store="s-9", channel="pos"), points_per_unit=D(1),
                           multipliers=[web_store_9]).points == 10
    assert compute_earning(buy(Line(D("10")), store="s-9", channel="web"), points_per_unit=D(1),
                           multipliers=[web_store_9]).points == 30


def test_rules_outside_their_window_or_day_do_not_apply() -> None:
    weekend = MultiplierRule("weekend", D(2), skus=frozenset({"A"}), window=Window(days_of_week=frozenset({6, 7})))
    expired = MultiplierRule("old", D(5), skus=frozenset({"A"}),
                             window=Window(valid_until=WEDNESDAY - timedelta(days=1)))
    earning = compute_earning(buy(Line(D("10"), sku="A")), points_per_unit=D(1), multipliers=[weekend, expired])
    assert earning.points == 10
    saturday = WEDNESDAY + timedelta(days=3)
    assert compute_earning(buy(Line(D("10"), sku="A"), at=saturday), points_per_unit=D(1),
                           multipliers=[weekend]).points == 20


def test_bonuses_first_purchase_min_spend_and_birthday_once_a_year() -> None:
    rules = [BonusRule("welcome", 100, "first_purchase"), BonusRule("big", 50, "min_spend", min_spend=D("100")),
             BonusRule("bday", 25, "birthday_month"), BonusRule("signup", 500, "enrollment")]
    first = compute_earning(buy(Line(D("100"))), points_per_unit=D(1), bonuses=rules,
                            member=MemberFacts(first_purchase=True, birth_month=11))
    assert first.breakdown == [("base", 100), ("bday", 25), ("big", 50), ("welcome", 100)]
    assert first.points == 275 and first.bonus_points == 175 and first.birthday_bonus
    later = compute_earning(buy(Line(D("99.99"))), points_per_unit=D(1), bonuses=rules,
                            member=MemberFacts(birth_month=11, birthday_bonus_year=2026))
    assert later.points == 99 and not later.birthday_bonus


def test_partial_refunds_add_up_to_the_full_reversal() -> None:
    common: dict[str, Any] = {"earned_points": 157, "bonus_points": 50, "total": D("107")}
    first = reversal_for_refund(**common, already_reversed=0, refunded_before=D(0), amount=D("33.33"))
    second = reversal_for_refund(**common, already_reversed=first, refunded_before=D("33.33"), amount=D("33.33"))
    last = reversal_for_refund(**common, already_reversed=first + second, refunded_before=D("66.66"),
                               amount=D("40.34"))
    assert first == 33 and first + second + last == 157


def test_lots_are_taken_soonest_expiring_first() -> None:
    lots = [LotState(1, 10, WEDNESDAY + timedelta(days=30)), LotState(2, 5, WEDNESDAY + timedelta(days=1)),
            LotState(3, 7, WEDNESDAY + timedelta(days=10))]
    assert take_from_lots(lots, 14) == [(2, 5), (3, 7), (1, 2)]
    assert take_from_lots(lots, 100) == [(2, 5), (3, 7), (1, 10)]


amounts = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False)
factors = st.decimals(min_value=1, max_value=5, places=2, allow_nan=False, allow_infinity=False)
categories = st.sampled_from(["coffee", "bakery", "tobacco", None])
lines = st.lists(st.builds(Line, amounts, categories), min_size=1, max_size=6)
multiplier_rules = st.lists(
    st.builds(MultiplierRule, st.sampled_from(["r1", "r2", "r3"]), factors,
              categories=st.sets(st.sampled_from(["coffee", "bakery"]), min_size=1).map(frozenset)),
    max_size=3, unique_by=lambda r: r.rule_id,
)


@given(lines, multiplier_rules, factors, st.decimals(min_value=0, max_value=10, places=2))
def test_breakdown_sums_to_the_points_which_are_never_negative(
    purchase_lines: list[Line], rules: list[MultiplierRule], tier: Decimal, rate: Decimal
) -> None:
    earning = compute_earning(buy(*purchase_lines), points_per_unit=rate, excluded_categories={"tobacco"},
                              multipliers=rules, tier_multiplier=tier,
                              bonuses=[BonusRule("b", 7, "min_spend", min_spend=D(50))])
    assert earning.points >= 0
    assert sum(points for _, points in earning.breakdown) == earning.points


@given(lines, multiplier_rules, factors, factors)
def test_adding_a_matching_multiplier_never_lowers_points(
    purchase_lines: list[Line], rules: list[MultiplierRule], tier: Decimal, extra: Decimal
) -> None:
    without = compute_earning(buy(*purchase_lines), points_per_unit=D(1), multipliers=rules, tier_multiplier=tier)
    added = MultiplierRule("r9", extra, channels=frozenset({"pos"}))
    with_it = compute_earning(buy(*purchase_lines), points_per_unit=D(1), multipliers=[*rules, added],
                              tier_multiplier=tier)
    assert with_it.points >= without.points


# --- the program's time zone -----------------------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")
SUNDAY_X2 = MultiplierRule("sunday-x2", D(2), skus=frozenset({"A"}), window=Window(days_of_week=frozenset({7})))


def sunday_points(moment: datetime, zone: ZoneInfo = NEW_YORK) -> int:
    return compute_earning(buy(Line(D("10"), sku="A"), at=moment), points_per_unit=D(1), multipliers=[SUNDAY_X2],
                           time_zone=zone).points


def test_weekdays_are_the_program_zones_across_a_change_of_daylight_saving_time() -> None:
    """New York leaves daylight saving time on Sunday 1 November 2026 at 06:00 UTC (02:00 EDT -> 01:00 EST):
    the local Sunday runs from 04:00 UTC that day to 05:00 UTC the next, 25 hours."""
    cases = {
        datetime(2026, 11, 1, 3, 59, tzinfo=UTC): 10,  # Saturday 23:59 EDT
        datetime(2026, 11, 1, 4, 0, tzinfo=UTC): 20,  # Sunday 00:00 EDT
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC): 20,  # Sunday 01:30 EDT, the first of the two
        datetime(2026, 11, 1, 6, 30, tzinfo=UTC): 20,  # Sunday 01:30 EST, the second
        datetime(2026, 11, 2, 4, 30, tzinfo=UTC): 20,  # Sunday 23:30 EST (a fixed -04:00 would say Monday)
        datetime(2026, 11, 2, 5, 0, tzinfo=UTC): 10,  # Monday 00:00 EST
    }
    for moment, points in cases.items():
        for offset in (timedelta(hours=14), timedelta(hours=-12), timedelta(0), timedelta(hours=5, minutes=30)):
            sent = moment.astimezone(timezone(offset))  # the same instant, as a till anywhere would send it
            assert sunday_points(sent) == points, (moment, offset)
    # spring: Sunday 8 March 2026 is 23 hours long (00:00 EST = 05:00 UTC to 00:00 EDT = 04:00 UTC next day)
    assert [sunday_points(datetime(2026, 3, d, h, tzinfo=UTC)) for d, h in ((8, 4), (8, 5), (9, 3), (9, 4))] == [
        10, 20, 20, 10]


def test_weekdays_default_to_utc_never_to_the_offset_sent() -> None:
    saturday_late = datetime(2026, 11, 21, 23, 30, tzinfo=timezone(timedelta(hours=-12)))  # Sunday 11:30 UTC
    assert sunday_points(saturday_late, ZoneInfo("UTC")) == 20
    assert compute_earning(buy(Line(D("10"), sku="A"), at=saturday_late), points_per_unit=D(1),
                           multipliers=[SUNDAY_X2]).points == 20


def test_the_birthday_month_and_its_year_are_the_program_zones() -> None:
    bday = [BonusRule("bday", 25, "birthday_month")]
    member = MemberFacts(birth_month=1)
    new_year_eve = datetime(2027, 1, 1, 3, 0, tzinfo=UTC)  # 31 December 2026, 22:00 in New York
    assert compute_earning(buy(Line(D("10")), at=new_year_eve), points_per_unit=D(1), bonuses=bday,
                           member=member, time_zone=NEW_YORK).points == 10
    in_january = compute_earning(buy(Line(D("10")), at=new_year_eve + timedelta(hours=2)), points_per_unit=D(1),
                                 bonuses=bday, member=member, time_zone=NEW_YORK)
    assert in_january.points == 35 and in_january.birthday_year == 2027
    tokyo_december = datetime(2026, 12, 31, 16, 0, tzinfo=UTC)  # 1 January 2027, 01:00 in Tokyo
    assert compute_earning(buy(Line(D("10")), at=tokyo_december), points_per_unit=D(1), bonuses=bday,
                           member=member, time_zone=ZoneInfo("Asia/Tokyo")).birthday_year == 2027


# --- the cap on one purchase ------------------------------------------------------------------------


def test_a_purchase_is_capped_by_taking_the_last_items_down() -> None:
    rules = [MultiplierRule(f"x{i}", D(100), skus=frozenset({"A"})) for i in range(3)]
    earning = compute_earning(buy(Line(D("999999999999.99"), sku="A")), points_per_unit=D("99999999.9999"),
                              multipliers=rules, tier_multiplier=D("9999.9999"),
                              bonuses=[BonusRule("welcome", 1_000_000, "first_purchase")],
                              member=MemberFacts(first_purchase=True), max_points=10**12)
    assert earning.points == 10**12 and sum(points for _, points in earning.breakdown) == 10**12
    assert earning.breakdown == [("base", 10**12), ("x0", 0), ("x1", 0), ("x2", 0), ("tier", 0), ("welcome", 0)]
    assert earning.bonus_points == 0 and earning.rule_ids == ["x0", "x1", "x2", "welcome"]
    small = compute_earning(buy(Line(D("100"), sku="A")), points_per_unit=D(1), multipliers=rules[:1],
                            bonuses=[BonusRule("welcome", 50, "first_purchase")],
                            member=MemberFacts(first_purchase=True), max_points=10_030)
    assert small.breakdown == [("base", 100), ("x0", 9_900), ("welcome", 30)]
    assert small.points == 10_030 and small.bonus_points == 30


def test_capping_keeps_a_lowering_multiplier_and_every_figure_within_the_cap() -> None:
    breakdown = [("base", 500), ("half", -250), ("x10", 2_250), ("tier", -500), ("bonus", 100)]
    assert capped(breakdown, 1_000) == [("base", 500), ("half", -250), ("x10", 750), ("tier", 0), ("bonus", 0)]
    assert capped(breakdown, 300) == [("base", 300), ("half", -50), ("x10", 50), ("tier", 0), ("bonus", 0)]


@given(lines, multiplier_rules, factors, st.integers(min_value=1, max_value=5_000))
def test_capped_points_sum_to_the_cap_and_never_pass_it(
    purchase_lines: list[Line], rules: list[MultiplierRule], tier: Decimal, cap: int
) -> None:
    common: dict[str, Any] = {"points_per_unit": D(3), "multipliers": rules, "tier_multiplier": tier,
                              "bonuses": [BonusRule("b", 70, "first_purchase")],
                              "member": MemberFacts(first_purchase=True)}
    free = compute_earning(buy(*purchase_lines), **common, max_points=10**12)
    earning = compute_earning(buy(*purchase_lines), **common, max_points=cap)
    assert earning.points == min(free.points, cap) == sum(points for _, points in earning.breakdown)
    assert all(-cap <= points <= cap for _, points in earning.breakdown)
    assert 0 <= earning.bonus_points <= min(70, earning.points)


def test_an_audience_admits_a_member_when_every_criterion_it_names_holds() -> None:
    gold_a = MemberFacts(tier_id="gold", value_class="A", lifecycle="active", enrolled_at=WEDNESDAY)
    assert Audience().admits(MemberFacts(), WEDNESDAY)
    assert Audience(tiers=frozenset({"gold", "silver"})).admits(gold_a, WEDNESDAY)
    assert not Audience(tiers=frozenset({"silver"})).admits(gold_a, WEDNESDAY)
    assert Audience(tiers=frozenset({"gold"}), value_classes=frozenset({"A"})).admits(gold_a, WEDNESDAY)
    assert not Audience(tiers=frozenset({"gold"}), lifecycles=frozenset({"lapsed"})).admits(gold_a, WEDNESDAY)
    # Not segmented yet (no value class, lifecycle or tier learned): in no list.
    assert not Audience(value_classes=frozenset({"A", "B", "C", "D"})).admits(MemberFacts(), WEDNESDAY)
    assert not Audience(lifecycles=frozenset({"new"})).admits(MemberFacts(), WEDNESDAY)


def test_enrolled_within_days_counts_back_from_the_moment_inclusively() -> None:
    week = Audience(enrolled_within_days=7)
    member = MemberFacts(enrolled_at=WEDNESDAY)
    assert week.admits(member, WEDNESDAY)
    assert week.admits(member, WEDNESDAY + timedelta(days=7))
    assert not week.admits(member, WEDNESDAY + timedelta(days=7, microseconds=1))
    assert not week.admits(MemberFacts(), WEDNESDAY)


def test_rules_aimed_elsewhere_give_nothing_and_the_breakdown_still_sums() -> None:
    lapsed = MemberFacts(lifecycle="lapsed", value_class="B")
    rules = [MultiplierRule("win-back", D(3), audience=Audience(lifecycles=frozenset({"lapsed"}))),
             MultiplierRule("vip", D(2), audience=Audience(value_classes=frozenset({"A"})))]
    bonuses = [BonusRule("lapsed-bonus", 25, "min_spend", D(0), audience=Audience(lifecycles=frozenset({"lapsed"}))),
               BonusRule("vip-bonus", 50, "min_spend", D(0), audience=Audience(value_classes=frozenset({"A"})))]
    purchase = PurchaseFacts((Line(D("10.00")),), WEDNESDAY)
    earned = compute_earning(purchase, points_per_unit=D(1), multipliers=rules, bonuses=bonuses, member=lapsed)
    assert earned.breakdown == [("base", 10), ("win-back", 20), ("lapsed-bonus", 25)]
    assert earned.points == sum(points for _, points in earned.breakdown) == 55
    nobody = compute_earning(purchase, points_per_unit=D(1), multipliers=rules, bonuses=bonuses)
    assert nobody.breakdown == [("base", 10)]


def test_periods_are_named_in_the_programs_calendar() -> None:
    saturday = datetime(2027, 1, 2, 23, 30, tzinfo=ZoneInfo("America/New_York"))  # ISO week 53 of 2026
    assert [period_key(saturday, p) for p in ("day", "week", "month", "quarter", "year", "rule")] == [
        "2027-01-02", "2026-W53", "2027-01", "2027-Q1", "2027", "rule"]


def test_an_allowance_is_what_is_left_of_the_tighter_limit() -> None:
    both = Limits(per_member_points=100, budget_points=1000)
    assert allowance(30, both, member_used=0, budget_used=0) == 30
    assert allowance(30, both, member_used=80, budget_used=0) == 20
    assert allowance(30, both, member_used=0, budget_used=990) == 10
    assert allowance(30, both, member_used=120, budget_used=0) == 0  # over already (the limit was lowered)
    assert allowance(30, Limits(budget_points=5), member_used=10_000, budget_used=0) == 5


def test_within_limits_cuts_items_and_a_birthday_bonus_cut_to_nothing_is_not_given() -> None:
    bonuses = [BonusRule("birthday", 50, "birthday_month"), BonusRule("basket", 20, "min_spend", D(0))]
    earned = Earning(points=80, breakdown=[("base", 10), ("birthday", 50), ("basket", 20)], bonus_points=70,
                     birthday_year=2026)
    cut = within_limits(earned, {"birthday": 0, "basket": 5}, bonuses)
    assert (cut.points, cut.breakdown, cut.bonus_points, cut.birthday_year) == (
        15, [("base", 10), ("birthday", 0), ("basket", 5)], 5, None)
    kept = within_limits(earned, {"birthday": 10}, bonuses)
    assert (kept.points, kept.bonus_points, kept.birthday_year) == (40, 30, 2026)
