"""`loyalty demo`'s generated data: seeded, skewed, inside the limits the services accept."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ops.demo_data import WINDOW_DAYS, anchor_of, demo_program, generate
from services.points.schemas import MemberIn, PurchaseIn

NOW = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)


def test_same_seed_and_day_same_data_so_a_rerun_replays() -> None:
    first, again = generate(200, 7, NOW), generate(200, 7, NOW + timedelta(hours=5))
    assert first.purchases == again.purchases and first.redemptions == again.redemptions
    assert generate(200, 8, NOW).purchases != first.purchases
    next_day = generate(200, 7, NOW + timedelta(days=1))
    assert not {p["purchase_id"] for p in next_day.purchases} & {p["purchase_id"] for p in first.purchases}


def test_every_body_is_one_the_api_accepts() -> None:
    data = generate(300, 7, NOW)
    for member in data.members:
        MemberIn.model_validate(member.body)
    ids = [p["purchase_id"] for p in data.purchases]
    assert len(ids) == len(set(ids))
    anchor = anchor_of(NOW)
    for body in data.purchases:
        PurchaseIn.model_validate(body)  # lines add up to the total, ids and currency valid
        moment = datetime.fromisoformat(body["occurred_at"])
        assert anchor - timedelta(days=WINDOW_DAYS) <= moment <= anchor <= NOW
    assert [p["occurred_at"] for p in data.purchases] == sorted(p["occurred_at"] for p in data.purchases)


def test_spend_is_skewed_toward_a_few_heavy_buyers() -> None:
    data = generate(2000, 7, NOW)
    profiles = Counter(m.profile for m in data.members)
    assert profiles["light"] > profiles["regular"] > profiles["heavy"] > 0
    assert profiles["lapsed"] > 0 and profiles["won_back"] > 0
    spends = sorted((m.spend for m in data.members), reverse=True)
    top_fifth = sum(spends[: len(spends) // 5], Decimal(0))
    assert top_fifth / sum(spends, Decimal(0)) > Decimal("0.5")
    for member in data.members:
        assert member.spend == sum((Decimal(p["total"]) for p in data.purchases
                                    if p["member_id"] == member.member_id), Decimal(0))


def test_lapsed_members_stopped_buying_half_a_year_ago() -> None:
    data = generate(500, 7, NOW)
    lapsed = {m.member_id for m in data.members if m.profile == "lapsed"}
    last = max(datetime.fromisoformat(p["occurred_at"]) for p in data.purchases if p["member_id"] in lapsed)
    assert anchor_of(NOW) - last > timedelta(days=180)


def test_the_program_earns_on_what_the_data_buys_and_redemptions_name_its_rewards() -> None:
    program = demo_program()
    assert program.earning_rules and program.tiers and program.rewards
    rewards = {r.reward_id for r in program.rewards}
    data = generate(300, 7, NOW)
    assert data.redemptions and {r["reward_id"] for r in data.redemptions} <= rewards
    excluded = set(program.program.excluded_categories if program.program else ())
    assert not excluded & {line["category"] for p in data.purchases for line in p["lines"]}
