"""The tier rules, pure: the program's ladder and what makes one valid, the qualifying value of a rolling
window and the one tier evaluation.

No I/O here: the use cases in ``service`` (``evaluation.settle`` and the purchase replay) gather the facts,
these functions decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

Basis = Literal["spend", "points"]
Downgrade = Literal["to_qualified", "one_level", "never"]

ENROLLED = "enrolled"
UPGRADE = "upgrade"
DOWNGRADE = "downgrade"
TIERS_CHANGED = "tiers-changed"


@dataclass(frozen=True)
class Tier:
    tier_id: str
    threshold: Decimal
    earn_multiplier: Decimal = Decimal(1)
    name: str = ""
    perks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    downgrade: Downgrade = "to_qualified"
    retention: timedelta = timedelta(days=365)


@dataclass(frozen=True)
class Program:
    """The tier ladder (lowest first) and how members qualify for it."""

    basis: Basis
    window_days: int
    retention_days: int
    downgrade: Downgrade
    tiers: tuple[Tier, ...]

    @property
    def ladder(self) -> list[str]:
        return [tier.tier_id for tier in self.tiers]

    @property
    def policy(self) -> Policy:
        return Policy(self.downgrade, timedelta(days=self.retention_days))

    def window_start(self, now: datetime) -> datetime:
        return now - timedelta(days=self.window_days)

    def rank_of(self, tier_id: str) -> int | None:
        return next((rank for rank, tier in enumerate(self.tiers) if tier.tier_id == tier_id), None)


DEFAULT_PROGRAM = Program(
    basis="spend", window_days=365, retention_days=365, downgrade="to_qualified",
    tiers=(Tier("member", Decimal(0), Decimal(1), "Member"),),
)


def ladder_problems(tiers: Sequence[Tier], basis: Basis) -> list[tuple[int, str, str]]:
    """What is wrong with a ladder as (index, field, message): ids unique, the first threshold 0, thresholds
    rising strictly, whole numbers when the basis is points."""
    problems: list[tuple[int, str, str]] = []
    first_index: dict[str, int] = {}
    for index, tier in enumerate(tiers):
        if tier.tier_id in first_index:
            problems.append((index, "tier_id", f"'{tier.tier_id}' is already tier {first_index[tier.tier_id]}"))
        first_index.setdefault(tier.tier_id, index)
        if index == 0 and tier.threshold != 0:
            problems.append((index, "threshold", "the first tier's threshold must be 0"))
        if index > 0 and tier.threshold <= tiers[index - 1].threshold:
            problems.append((index, "threshold", f"must be greater than {tiers[index - 1].threshold}, "
                                                 "the threshold of the tier before"))
        if basis == "points" and tier.threshold != tier.threshold.to_integral_value():
            problems.append((index, "threshold", "must be a whole number of points when the basis is points"))
    return problems


@dataclass(frozen=True)
class PurchaseFacts:
    """What tiers knows of one purchase: its spend and points, each net of refunds."""

    occurred_at: datetime
    total: Decimal = Decimal(0)
    refunded: Decimal = Decimal(0)
    points: int = 0
    points_reversed: int = 0

    def value(self, basis: Basis) -> Decimal:
        if basis == "points":
            return Decimal(max(self.points - self.points_reversed, 0))
        return max(self.total - self.refunded, Decimal(0))


def qualifying_value(facts: Iterable[PurchaseFacts], basis: Basis, window_start: datetime) -> Decimal:
    """The sum over purchases that happened at or after ``window_start`` (later ones too: a till's clock may
    run ahead), each net of its refunds and never below zero, so one refund cannot eat another purchase."""
    return sum((fact.value(basis) for fact in facts if fact.occurred_at >= window_start), Decimal(0))


def supported_rank(tiers: Sequence[Tier], value: Decimal) -> int:
    """The highest tier whose threshold ``value`` reaches (thresholds rise, the first is 0)."""
    rank = 0
    for index, tier in enumerate(tiers):
        if value >= tier.threshold:
            rank = index
    return rank


@dataclass(frozen=True)
class Standing:
    tier_id: str
    since: datetime
    retained_until: datetime


@dataclass(frozen=True)
class Decision:
    """The member's standing after an evaluation; ``reason`` is None when the tier stays (``retained_until``
    may still have moved forward)."""

    tier_id: str
    rank: int
    since: datetime
    retained_until: datetime
    reason: str | None

    @property
    def standing(self) -> Standing:
        return Standing(self.tier_id, self.since, self.retained_until)


def evaluate(
    standing: Standing | None, value: Decimal, tiers: Sequence[Tier], policy: Policy, now: datetime
) -> Decision:
    """Where a member stands at ``now`` with qualifying ``value``.

    - A new member (no standing) is placed at the tier the value supports (the lowest without purchases).
    - A member whose tier is no longer in the ladder is placed at the tier the value supports.
    - Reaching a higher threshold upgrades at once.
    - Qualifying for the current tier (or higher) pushes ``retained_until`` to ``now`` + retention; it is
      never shortened.
    - Below the current tier's threshold the tier is kept until ``retained_until``; after that the policy
      decides: ``to_qualified`` drops to the supported tier, ``one_level`` one step (with a new retention
      period), ``never`` keeps it.
    """
    if not tiers:
        raise ValueError("a ladder has at least one tier")
    qualified = supported_rank(tiers, value)
    renewed = now + policy.retention

    def move(rank: int, reason: str, retained_until: datetime) -> Decision:
        return Decision(tiers[rank].tier_id, rank, now, retained_until, reason)

    if standing is None:
        return move(qualified, ENROLLED, renewed)
    kept = max(standing.retained_until, renewed)
    current = next((rank for rank, tier in enumerate(tiers) if tier.tier_id == standing.tier_id), None)
    if current is None:
        return move(qualified, TIERS_CHANGED, kept)
    if qualified > current:
        return move(qualified, UPGRADE, kept)
    if qualified == current:
        return Decision(standing.tier_id, current, standing.since, kept, None)
    if now < standing.retained_until or policy.downgrade == "never":
        return Decision(standing.tier_id, current, standing.since, standing.retained_until, None)
    target = qualified if policy.downgrade == "to_qualified" else current - 1
    return move(target, DOWNGRADE, renewed)


def next_tier(tiers: Sequence[Tier], tier_id: str) -> Tier | None:
    """The tier above ``tier_id``, None at the top."""
    ids = [tier.tier_id for tier in tiers]
    if tier_id not in ids:
        return None
    rank = ids.index(tier_id)
    return tiers[rank + 1] if rank + 1 < len(tiers) else None
