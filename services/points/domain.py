"""Pure rules of the points service: earning arithmetic and the order lots are spent in. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal


@dataclass(frozen=True)
class Line:
    amount: Decimal
    category: str | None = None
    sku: str | None = None


@dataclass(frozen=True)
class Earning:
    points: int
    breakdown: list[tuple[str, int]]

    @property
    def rule_ids(self) -> list[str]:
        return [rule_id for rule_id, _ in self.breakdown if rule_id not in ("base", "tier")]


def floor_points(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def compute_earning(
    lines: list[Line], *, points_per_unit: Decimal, excluded_categories: frozenset[str] | set[str],
    tier_multiplier: Decimal = Decimal(1),
) -> Earning:
    """Points for a purchase and how they break down.

    The total is floor(eligible amount x points per unit x tier multiplier). ``base`` is what the base rate
    alone gives and ``tier`` the rest, so the breakdown always sums to the total and neither is negative
    while the multiplier is at least 1.
    """
    eligible = sum((line.amount for line in lines if line.category not in excluded_categories), Decimal(0))
    base = floor_points(eligible * points_per_unit)
    total = floor_points(eligible * points_per_unit * tier_multiplier)
    breakdown = [("base", base)]
    if total != base:
        breakdown.append(("tier", total - base))
    return Earning(points=max(total, 0), breakdown=breakdown)


@dataclass
class LotState:
    lot_id: int
    remaining: int
    expires_at: datetime


def take_from_lots(lots: list[LotState], points: int) -> list[tuple[int, int]]:
    """Which lots pay ``points``, soonest-expiring first: a list of (lot_id, points taken).

    Takes as much as the lots hold; the caller decides whether a shortfall is allowed.
    """
    taken: list[tuple[int, int]] = []
    left = points
    for lot in sorted(lots, key=lambda lot: (lot.expires_at, lot.lot_id)):
        if left <= 0:
            break
        take = min(lot.remaining, left)
        if take > 0:
            taken.append((lot.lot_id, take))
            left -= take
    return taken
