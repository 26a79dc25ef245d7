"""Pure rules of the rewards service: who may redeem what, and voucher codes.

No I/O here: the use cases in service.py gather the facts, these functions decide.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Refusal = Literal["reward-unavailable", "tier-too-low", "out-of-stock", "limit-reached"]
Ineligibility = Refusal | Literal["insufficient-points"]
GiftRefusal = Literal["reward-not-found", "reward-inactive", "reward-unavailable", "out-of-stock"]

VOUCHER_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O or 1/I: read aloud and typed at a till
VOUCHER_LENGTH = 15  # 15 x 5 bits = 75 bits of randomness
VOUCHER_GROUP = 5


@dataclass(frozen=True)
class RewardTerms:
    points_cost: int
    active: bool = True
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    min_tier: str | None = None
    stock_left: int | None = None  # None: unlimited
    per_member_limit: int | None = None

    def available_at(self, moment: datetime) -> bool:
        """Active and inside [valid_from, valid_until)."""
        if not self.active:
            return False
        if self.valid_from is not None and moment < self.valid_from:
            return False
        return self.valid_until is None or moment < self.valid_until


@dataclass(frozen=True)
class MemberStanding:
    """What rewards knows of a member. Someone not heard of yet has no tier (rank 0) and no points."""

    tier_id: str | None = None
    tier_rank: int = 0  # the rank the member's last tier.changed carried
    available: int = 0


def tier_allows(min_tier: str | None, member: MemberStanding, ladder: Mapping[str, int]) -> bool:
    """Whether a member's tier reaches a reward's ``min_tier``.

    - No ``min_tier``: everyone.
    - A member with no tier.changed yet is at rank 0 (the lowest tier). Otherwise the member's rank is their
      tier's position on the latest ladder rewards has seen, or, if their tier is not on it, the rank their
      last tier.changed carried.
    - ``min_tier`` on the ladder: the member's rank must be at least its rank.
    - ``min_tier`` not on the ladder (no ladder seen yet, or a tier id that tiers does not define): only a
      member whose tier is exactly ``min_tier`` qualifies.
    """
    if min_tier is None:
        return True
    if min_tier not in ladder:
        return member.tier_id == min_tier
    rank = 0 if member.tier_id is None else ladder.get(member.tier_id, member.tier_rank)
    return rank >= ladder[min_tier]


def refusal(
    terms: RewardTerms, member: MemberStanding, ladder: Mapping[str, int], *, quantity: int, held: int,
    now: datetime,
) -> Refusal | None:
    """Why a redemption of ``quantity`` units must be refused at once, in the order the checks are made;
    None when it may go ahead. ``held`` is how many units of this reward the member's pending and confirmed
    redemptions already hold. Points are not checked here: only the points service knows the balance for sure.
    """
    if not terms.available_at(now):
        return "reward-unavailable"
    if not tier_allows(terms.min_tier, member, ladder):
        return "tier-too-low"
    if terms.stock_left is not None and terms.stock_left < quantity:
        return "out-of-stock"
    if terms.per_member_limit is not None and held + quantity > terms.per_member_limit:
        return "limit-reached"
    return None


def ineligibility(
    terms: RewardTerms, member: MemberStanding, ladder: Mapping[str, int], *, held: int, now: datetime
) -> Ineligibility | None:
    """Why a member could not redeem one unit now (the catalog's ``eligible`` mark), or None. Adds to the
    immediate refusals the points check, against the last balance rewards heard of, which may lag a little."""
    reason = refusal(terms, member, ladder, quantity=1, held=held, now=now)
    if reason is None and member.available < terms.points_cost:
        return "insufficient-points"
    return reason


def gift_refusal(terms: RewardTerms | None, *, now: datetime) -> GiftRefusal | None:
    """Why a goal's reward (one unit, for free) cannot be given, or None. The program chose the reward for the
    goal, so only the reward itself is asked, never the member's tier, per-member limit or points. A stock
    read as left may still be gone when it is taken: the taking decides (``out-of-stock`` then too)."""
    if terms is None:
        return "reward-not-found"
    if not terms.active:
        return "reward-inactive"
    if not terms.available_at(now):
        return "reward-unavailable"
    if terms.stock_left is not None and terms.stock_left < 1:
        return "out-of-stock"
    return None


def restock(stock: int | None, stock_left: int | None, quantity: int) -> int | None:
    """``stock_left`` after units come back (a rejection or a cancellation); never above ``stock``."""
    if stock is None or stock_left is None:
        return None
    return min(stock, stock_left + quantity)


def stock_left_for(stock: int | None, held: int) -> int | None:
    """``stock_left`` when an operator sets ``stock``: what the pending and confirmed redemptions do not hold."""
    return None if stock is None else max(stock - held, 0)


def reask_delays(retry_seconds: float, max_seconds: float) -> list[float]:
    """How long a pending redemption waits for points' answer before it is asked again, by the number of asks
    so far: ``retry_seconds`` after the first, doubling after each further ask up to ``max_seconds``. Item
    ``i`` is the wait after ask ``i + 1``; the last item (``max_seconds``) is the wait after every later ask."""
    delays: list[float] = []
    delay = retry_seconds
    while delay < max_seconds:
        delays.append(delay)
        delay *= 2
    delays.append(max_seconds)
    return delays


def new_voucher_code() -> str:
    """15 characters drawn with ``secrets`` from a 32-letter alphabet, shown as ``XXXXX-XXXXX-XXXXX``."""
    raw = "".join(secrets.choice(VOUCHER_ALPHABET) for _ in range(VOUCHER_LENGTH))
    return format_code(raw)


def format_code(raw: str) -> str:
    return "-".join(raw[i:i + VOUCHER_GROUP] for i in range(0, len(raw), VOUCHER_GROUP))


def normalize_code(typed: str) -> str | None:
    """A code as a till may type it (any case, with or without dashes and spaces) in its stored form, or None
    when it cannot be a voucher code."""
    raw = typed.upper().replace("-", "").replace(" ", "")
    if len(raw) != VOUCHER_LENGTH or any(c not in VOUCHER_ALPHABET for c in raw):
        return None
    return format_code(raw)
