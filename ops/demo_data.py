"""`loyalty demo`'s data, pure and seeded: a coffee-shop program, members with a realistic skew and a year
of their purchases, a few redemptions. The same seed and day give the same ids and bodies, so running the
demo again the same day replays instead of doubling the data.

Profiles (share of members, purchases in the year, ticket size): a few heavy regulars who make much of the
revenue, regulars, many light buyers, lapsed members who stopped half a year ago and a few who came back
after a long pause, so tiers, value classes and every lifecycle show at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from random import Random
from typing import Any

from ops.program import ProgramFile

WINDOW_DAYS = 360  # inside the tiers' 365-day window, and far inside LOYALTY_MAX_PAST_DAYS
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim", "Hedy",
               "Linus", "Margaret", "John", "Katherine", "Dennis", "Shafi", "Niklaus", "Karen", "Leslie")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman",
              "Lee", "Lamarr", "Torvalds", "Hamilton", "Backus", "Johnson", "Ritchie", "Goldwasser", "Wirth")
STORES = ("store-01", "store-02", "store-03", "store-04", "store-05", "store-06", "store-07", "store-08")
# (sku, category, low price, high price)
PRODUCTS = (("espresso", "coffee", 2, 4), ("latte", "coffee", 3, 6), ("cold-brew", "coffee", 4, 6),
            ("croissant", "pastry", 2, 5), ("muffin", "pastry", 3, 5), ("beans-250g", "beans", 9, 18),
            ("grinder", "equipment", 40, 120))


@dataclass(frozen=True)
class Profile:
    name: str
    share: float
    purchases: tuple[int, int]
    items: tuple[int, int]
    days: tuple[int, int]  # purchases fall between these many days before the anchor


PROFILES = (
    Profile("heavy", 0.05, (20, 45), (3, 6), (1, WINDOW_DAYS)),
    Profile("regular", 0.20, (6, 14), (1, 3), (1, WINDOW_DAYS)),
    Profile("light", 0.45, (1, 3), (1, 2), (1, WINDOW_DAYS)),
    Profile("lapsed", 0.25, (1, 4), (1, 2), (190, WINDOW_DAYS)),
    Profile("won_back", 0.05, (2, 5), (1, 3), (300, WINDOW_DAYS)),
)


def campaigns_start(now: datetime) -> datetime:
    """The first day (UTC) of the month three months back: the demo's goals count from there, so the months
    since have closed and are settled by the demo's run, and the date stays the same all month."""
    month = now.astimezone(UTC).month - 3
    year = now.astimezone(UTC).year + (month - 1) // 12
    return datetime(year, (month - 1) % 12 + 1, 1, tzinfo=UTC)


def demo_program(now: datetime | None = None) -> ProgramFile:
    start = campaigns_start(now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    return ProgramFile.model_validate({
        "program": {"currency": "USD", "points_per_unit": "1", "expiry_days": 365, "pending_days": 0,
                    "excluded_categories": ["gift-card"]},
        "earning_rules": [
            {"rule_id": "demo-pastry-double", "kind": "multiplier", "factor": "2",
             "match": {"categories": ["pastry"]}},
            {"rule_id": "demo-beans-weekend", "kind": "multiplier", "factor": "3",
             "match": {"categories": ["beans"]}, "days_of_week": [6, 7]},
            {"rule_id": "demo-welcome", "kind": "bonus", "points": 50, "trigger": "first_purchase"},
            {"rule_id": "demo-big-basket", "kind": "bonus", "points": 25, "trigger": "min_spend",
             "min_spend": "30.00"},
            # One campaign of each kind (docs/campaigns.md); the demo prints their reports.
            {"rule_id": "demo-win-back", "kind": "multiplier", "factor": "3", "audience": {"lifecycles": ["lapsed"]},
             "limits": {"per_member_points": 300, "budget_points": 20_000}, "holdout_pct": 20},
            {"rule_id": "demo-coffee-card", "kind": "goal", "metric": "purchases", "target": "5",
             "period": "rolling", "match": {"categories": ["coffee"]}, "reward": {"reward_id": "demo-free-coffee"},
             "valid_from": start},
            {"rule_id": "demo-monthly-regular", "kind": "goal", "metric": "spend", "target": "40",
             "period": "month", "reward": {"points": 100}, "valid_from": start},
        ],
        "tiers": {"basis": "spend", "window_days": 365, "retention_days": 365, "downgrade": "to_qualified",
                  "tiers": [
                      {"tier_id": "green", "name": "Green", "threshold": "0", "earn_multiplier": "1"},
                      {"tier_id": "silver", "name": "Silver", "threshold": "60", "earn_multiplier": "1.25",
                       "perks": ["free-refill"]},
                      {"tier_id": "gold", "name": "Gold", "threshold": "170", "earn_multiplier": "1.5",
                       "perks": ["free-refill", "birthday-drink"]},
                      {"tier_id": "platinum", "name": "Platinum", "threshold": "700", "earn_multiplier": "2",
                       "perks": ["free-refill", "birthday-drink", "tasting-events"]},
                  ]},
        "rewards": [
            {"reward_id": "demo-free-coffee", "name": "Any coffee", "points_cost": 150},
            {"reward_id": "demo-pastry", "name": "Any pastry", "points_cost": 120},
            {"reward_id": "demo-mug", "name": "Ceramic mug", "points_cost": 900, "stock": 200,
             "per_member_limit": 1},
            {"reward_id": "demo-tasting", "name": "Tasting evening", "points_cost": 2500, "stock": 40,
             "min_tier": "gold"},
        ],
    })


@dataclass
class DemoMember:
    member_id: str
    profile: str
    body: dict[str, Any]
    spend: Decimal = Decimal(0)  # what the tiers service should count for the member once all is in


@dataclass
class DemoData:
    members: list[DemoMember]
    purchases: list[dict[str, Any]]  # oldest first: the order they are sent in
    redemptions: list[dict[str, Any]]
    by_profile: dict[str, int] = field(default_factory=dict)


def anchor_of(now: datetime) -> datetime:
    """Midnight (UTC) of today: purchases end there, and ids carry the day so a re-run the same day replays."""
    return datetime.combine(now.astimezone(UTC).date(), time(0), UTC)


def _profiles(count: int, rng: Random) -> Iterator[Profile]:
    weights = [p.share for p in PROFILES]
    for _ in range(count):
        yield rng.choices(PROFILES, weights)[0]


def _purchase_moments(profile: Profile, anchor: datetime, rng: Random) -> list[datetime]:
    count = rng.randint(*profile.purchases)
    low, high = profile.days
    moments = [anchor - timedelta(days=rng.uniform(low, high)) for _ in range(count)]
    if profile.name == "won_back":
        moments.append(anchor - timedelta(days=rng.uniform(1, 60)))
    return sorted(m.replace(microsecond=0) for m in moments)


def _lines(profile: Profile, rng: Random) -> list[dict[str, Any]]:
    lines = []
    for _ in range(rng.randint(*profile.items)):
        sku, category, low, high = rng.choice(PRODUCTS[:-1] if rng.random() > 0.01 else PRODUCTS)
        price = Decimal(rng.randint(low * 100, high * 100)) / 100
        lines.append({"sku": sku, "category": category, "quantity": rng.choice((1, 1, 1, 2)),
                      "unit_price": str(price)})
    return lines


def generate(members: int, seed: int, now: datetime) -> DemoData:
    rng = Random(seed)
    anchor = anchor_of(now)
    day = anchor.strftime("%Y%m%d")
    data = DemoData([], [], [])
    for index, profile in enumerate(_profiles(members, rng), start=1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        member = DemoMember(f"demo-{index:05d}", profile.name, {
            "name": f"{first} {last}", "email": f"{first.lower()}.{last.lower()}.{index}@example.com",
            "birth_date": date(rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28)).isoformat()})
        data.by_profile[profile.name] = data.by_profile.get(profile.name, 0) + 1
        for number, moment in enumerate(_purchase_moments(profile, anchor, rng), start=1):
            lines = _lines(profile, rng)
            total = sum((Decimal(line["unit_price"]) * line["quantity"] for line in lines), Decimal(0))
            member.spend += total
            data.purchases.append({
                "purchase_id": f"demo{seed}-{day}-{index}-{number}", "member_id": member.member_id,
                "store_id": rng.choice(STORES), "channel": "pos" if rng.random() < 0.85 else "app",
                "occurred_at": moment.isoformat().replace("+00:00", "Z"), "currency": "USD",
                "total": str(total), "lines": lines})
        data.members.append(member)
    data.purchases.sort(key=lambda body: body["occurred_at"])
    heavy = [m for m in data.members if m.profile == "heavy"]
    for number, member in enumerate(heavy[:20], start=1):
        data.redemptions.append({"redemption_id": f"demo{seed}-{day}-r{number}", "member_id": member.member_id,
                                 "reward_id": "demo-free-coffee" if number % 3 else "demo-mug", "quantity": 1})
    return data


def comebacks(lapsed: list[str], seed: int, now: datetime) -> list[dict[str, Any]]:
    """Purchases of today by about half of the members the segmentation found lapsed: the win-back's
    audience buying again. Who comes back does not depend on the win-back's groups, so its report shows
    what a rule that changes nothing looks like: points given, no uplift."""
    rng = Random(seed)
    day = anchor_of(now).strftime("%Y%m%d")
    moment = now.astimezone(UTC).replace(microsecond=0) - timedelta(minutes=5)
    bodies = []
    for member_id in sorted(lapsed):
        lines = _lines(PROFILES[1], rng)
        if rng.random() < 0.5:
            total = sum((Decimal(line["unit_price"]) * line["quantity"] for line in lines), Decimal(0))
            bodies.append({"purchase_id": f"demo{seed}-{day}-back-{member_id}", "member_id": member_id,
                           "store_id": STORES[0], "channel": "pos",
                           "occurred_at": moment.isoformat().replace("+00:00", "Z"), "currency": "USD",
                           "total": str(total), "lines": lines})
    return bodies
