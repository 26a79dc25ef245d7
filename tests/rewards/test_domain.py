"""Eligibility rules and voucher codes: plain Python, no database."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from services.rewards.domain import (
    VOUCHER_ALPHABET,
    MemberStanding,
    RewardTerms,
    gift_refusal,
    ineligibility,
    new_voucher_code,
    normalize_code,
    refusal,
    restock,
    stock_left_for,
    tier_allows,
)
from tests.rewards.builders import VOUCHER_CODE

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
LADDER = {"bronze": 0, "silver": 1, "gold": 2}


# --- voucher codes ---------------------------------------------------------------------------------


def test_voucher_codes_are_printable_groups_without_ambiguous_characters() -> None:
    assert len(set(VOUCHER_ALPHABET)) == 32
    assert not set(VOUCHER_ALPHABET) & set("01OI")
    for _ in range(200):
        assert VOUCHER_CODE.match(new_voucher_code())


def test_voucher_codes_carry_at_least_60_bits_and_do_not_repeat() -> None:
    assert 15 * math.log2(len(VOUCHER_ALPHABET)) >= 60
    codes = {new_voucher_code() for _ in range(20_000)}
    assert len(codes) == 20_000
    used = {c for code in codes for c in code.replace("-", "")}
    assert used == set(VOUCHER_ALPHABET), "every character of the alphabet is drawn"


@pytest.mark.parametrize(("typed", "stored"), [
    ("ABCDE-FGHJK-MNPQR", "ABCDE-FGHJK-MNPQR"),
    ("abcdefghjkmnpqr", "ABCDE-FGHJK-MNPQR"),
    (" abcde fghjk mnpqr ", "ABCDE-FGHJK-MNPQR"),
    ("ABCDE-FGHJK-MNPQ", None),
    ("ABCDE-FGHJK-MNPQ0", None),
    ("", None),
])
def test_codes_typed_at_a_till_are_normalized(typed: str, stored: str | None) -> None:
    assert normalize_code(typed) == stored


# --- eligibility -----------------------------------------------------------------------------------


def test_checks_come_in_the_documented_order() -> None:
    everything_wrong = RewardTerms(points_cost=100, active=False, min_tier="gold", stock_left=0, per_member_limit=1)
    member = MemberStanding(tier_id="bronze", available=0)
    assert refusal(everything_wrong, member, LADDER, quantity=1, held=1, now=NOW) == "reward-unavailable"
    active = RewardTerms(points_cost=100, min_tier="gold", stock_left=0, per_member_limit=1)
    assert refusal(active, member, LADDER, quantity=1, held=1, now=NOW) == "tier-too-low"
    open_to_all = RewardTerms(points_cost=100, stock_left=0, per_member_limit=1)
    assert refusal(open_to_all, member, LADDER, quantity=1, held=1, now=NOW) == "out-of-stock"
    in_stock = RewardTerms(points_cost=100, stock_left=5, per_member_limit=1)
    assert refusal(in_stock, member, LADDER, quantity=1, held=1, now=NOW) == "limit-reached"
    assert refusal(in_stock, member, LADDER, quantity=1, held=0, now=NOW) is None
    assert ineligibility(in_stock, member, LADDER, held=0, now=NOW) == "insufficient-points"
    assert ineligibility(in_stock, MemberStanding(available=100), LADDER, held=0, now=NOW) is None


def test_validity_window_includes_its_start_and_excludes_its_end() -> None:
    terms = RewardTerms(points_cost=1, valid_from=NOW, valid_until=NOW + timedelta(days=1))
    assert terms.available_at(NOW)
    assert not terms.available_at(NOW - timedelta(seconds=1))
    assert not terms.available_at(NOW + timedelta(days=1))


def test_quantity_counts_against_stock_and_limit() -> None:
    terms = RewardTerms(points_cost=1, stock_left=3, per_member_limit=4)
    assert refusal(terms, MemberStanding(), {}, quantity=3, held=0, now=NOW) is None
    assert refusal(terms, MemberStanding(), {}, quantity=4, held=0, now=NOW) == "out-of-stock"
    assert refusal(terms, MemberStanding(), {}, quantity=3, held=2, now=NOW) == "limit-reached"


@pytest.mark.parametrize(("min_tier", "member", "ladder", "allowed"), [
    (None, MemberStanding(), {}, True),
    ("silver", MemberStanding(tier_id="gold", tier_rank=2), LADDER, True),
    ("silver", MemberStanding(tier_id="silver", tier_rank=1), LADDER, True),
    ("silver", MemberStanding(tier_id="bronze", tier_rank=0), LADDER, False),
    ("bronze", MemberStanding(), LADDER, True),  # no tier event yet: rank 0
    ("silver", MemberStanding(), LADDER, False),
    ("silver", MemberStanding(tier_id="vip", tier_rank=3), LADDER, True),  # not on the ladder: its event's rank
    ("platinum", MemberStanding(tier_id="gold", tier_rank=2), LADDER, False),  # min_tier unknown: exact match only
    ("platinum", MemberStanding(tier_id="platinum", tier_rank=3), LADDER, True),
    ("silver", MemberStanding(tier_id="silver", tier_rank=1), {}, True),  # no ladder seen yet
    ("silver", MemberStanding(tier_id="gold", tier_rank=2), {}, False),
])
def test_tier_gate(min_tier: str | None, member: MemberStanding, ladder: dict[str, int], allowed: bool) -> None:
    assert tier_allows(min_tier, member, ladder) is allowed


def test_stock_comes_back_but_never_above_the_stock() -> None:
    assert restock(10, 7, 2) == 9
    assert restock(10, 9, 2) == 10
    assert restock(None, None, 2) is None
    assert stock_left_for(10, 3) == 7
    assert stock_left_for(2, 3) == 0
    assert stock_left_for(None, 3) is None


# --- a goal's reward -------------------------------------------------------------------------------


@pytest.mark.parametrize(("terms", "expected"), [
    (None, "reward-not-found"),
    (RewardTerms(points_cost=100, active=False), "reward-inactive"),
    (RewardTerms(points_cost=100, valid_until=NOW), "reward-unavailable"),
    (RewardTerms(points_cost=100, valid_from=NOW + timedelta(seconds=1)), "reward-unavailable"),
    (RewardTerms(points_cost=100, stock_left=0), "out-of-stock"),
    (RewardTerms(points_cost=100, stock_left=1, min_tier="gold", per_member_limit=1), None),  # the member's terms
    (RewardTerms(points_cost=100), None),
])
def test_a_goals_reward_asks_only_the_reward(terms: RewardTerms | None, expected: str | None) -> None:
    assert gift_refusal(terms, now=NOW) == expected
