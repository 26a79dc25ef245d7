"""Customer segmentation, pure: RFM scores, value classes, lifecycle, CLV and the Pareto share.

No I/O here: ``service.segmentation.recompute_segments`` gathers each member's purchases, these functions decide.
docs/segments.md explains the model for operators and marketing; the rules in short:

- Only *counted* purchases matter: those whose amount net of refunds is above zero. A fully refunded
  purchase is as if it never happened; a partial refund lowers the revenue.
- The *scored base* is every member who is not suspended or closed and made at least one counted purchase.
  RFM scores, value classes and the Pareto share are taken over the base; members outside it get RFM 1/1/1,
  class D and a CLV of 0. Lifecycle is computed for everyone.
- **Quintile scores** (1-5): a member's score is ``1 + floor(5 * below / n)``, where ``below`` is how many
  members of the base have a strictly worse value and ``n`` the size of the base. Ties therefore share the
  score of the first position of their value (the lower one), whatever order the members come in, and a
  better value never scores lower. Recency compares the last purchase (later is better), frequency the
  number of purchases in the window, monetary the revenue in the window.
- **Value classes** by cumulative revenue share over the window, highest revenue first: A holds the members
  that make the first 50% of revenue, B the next 30%, C the next 15%, D the rest and everyone without
  revenue. A member belongs to the class where their share *starts*: the member who straddles 50% is still
  A. Members with equal revenue start together (at the share of everyone with more), so they get the same
  class.
- **Lifecycle**: ``new`` (enrolled within ``new_days`` and at most one purchase), otherwise by the time
  since the last purchase against the recency threshold T: ``lapsed`` past 2T, ``at_risk`` past T,
  ``won_back`` when the member came back (a purchase more than 2T after the one before it) within the
  last T, else ``active``. A member who never bought is measured from the enrolment: ``at_risk``, and
  ``lapsed`` past 2T.
- **CLV** = average order value x purchases per year x expected remaining lifetime in years, which is
  annual revenue x r / (1 - r) with r the program's own annual retention rate: of the members (any status)
  who bought in the window before the current one, the share who bought again in the current one. That is
  the undiscounted geometric model (a member stays another year with probability r). r is capped at 0.95
  (19 years); before the program has a previous window with buyers, r is taken as 0.5 (one more year).
- **Pareto share**: the revenue share of the top 20% of the base by revenue, read off the Lorenz curve
  (the member at the 20% mark counts with the fraction of them that falls inside it).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Any, Literal

ValueClass = Literal["A", "B", "C", "D"]
Lifecycle = Literal["new", "active", "at_risk", "lapsed", "won_back"]

VALUE_CLASSES: tuple[ValueClass, ...] = ("A", "B", "C", "D")
LIFECYCLES: tuple[Lifecycle, ...] = ("new", "active", "at_risk", "lapsed", "won_back")
# Where each class ends, as a share of the window's revenue: A the first 50%, B the next 30%, C the next 15%.
CLASS_BOUNDS: tuple[tuple[ValueClass, Decimal], ...] = (("A", Decimal("0.50")), ("B", Decimal("0.80")),
                                                        ("C", Decimal("0.95")))
SCORED_STATUSES = frozenset({"active", None})  # None: known from purchases only, so not suspended or closed
PARETO_FRACTION = Decimal("0.2")
DEFAULT_RETENTION = Decimal("0.5")
MAX_RETENTION = Decimal("0.95")
DAYS_PER_YEAR = Decimal(365)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Params:
    """The settings segments are computed with (``TIERS_SEGMENT_WINDOW_DAYS`` and friends)."""

    window_days: int = 365
    recency_days: int = 90
    new_days: int = 30

    @property
    def window(self) -> timedelta:
        return timedelta(days=self.window_days)

    @property
    def recency(self) -> timedelta:
        return timedelta(days=self.recency_days)


@dataclass(frozen=True)
class Purchase:
    occurred_at: datetime
    net: Decimal  # the total less what was refunded

    @property
    def counted(self) -> bool:
        return self.net > 0


@dataclass(frozen=True)
class History:
    """What segmentation needs of one member's counted purchases, as of ``now``."""

    purchases: int = 0  # ever
    last_at: datetime | None = None
    returned_at: datetime | None = None  # the last purchase more than twice the threshold after the one before
    window_purchases: int = 0
    window_revenue: Decimal = Decimal(0)
    bought_in_window: bool = False
    bought_in_previous_window: bool = False


def summarize(purchases: Iterable[Purchase], now: datetime, params: Params) -> History:
    """Fold a member's purchases (in any order) into their ``History`` as of ``now``; purchases that are
    not counted are left out. A purchase dated after ``now`` (a till clock running ahead) is in the window."""
    counted = sorted((p for p in purchases if p.counted), key=lambda p: p.occurred_at)
    if not counted:
        return History()
    window_start = now - params.window
    previous_start = window_start - params.window
    lapse = 2 * params.recency
    returned_at = None
    for before, after in pairwise(counted):
        if after.occurred_at - before.occurred_at > lapse:
            returned_at = after.occurred_at
    in_window = [p for p in counted if p.occurred_at >= window_start]
    return History(
        purchases=len(counted),
        last_at=counted[-1].occurred_at,
        returned_at=returned_at,
        window_purchases=len(in_window),
        window_revenue=sum((p.net for p in in_window), Decimal(0)),
        bought_in_window=bool(in_window),
        bought_in_previous_window=any(previous_start <= p.occurred_at < window_start for p in counted),
    )


def lifecycle(enrolled_at: datetime, history: History, now: datetime, params: Params) -> Lifecycle:
    """Where the member stands in their life with the program (see the module docstring)."""
    if now - enrolled_at <= timedelta(days=params.new_days) and history.purchases <= 1:
        return "new"
    idle = now - (history.last_at or enrolled_at)
    if idle > 2 * params.recency:
        return "lapsed"
    if idle > params.recency or history.last_at is None:
        return "at_risk"
    if history.returned_at is not None and now - history.returned_at <= params.recency:
        return "won_back"
    return "active"


def quintile_scores(values: Sequence[Any]) -> list[int]:
    """Scores 1-5 for ``values`` (higher is better), in their order: ``1 + floor(5 * below / n)`` with
    ``below`` the number of strictly lower values, so equal values share a score and order does not matter."""
    ordered = sorted(values)
    n = len(ordered)
    return [1 + 5 * bisect.bisect_left(ordered, value) // n for value in values]


def value_classes(revenues: Sequence[Decimal]) -> list[ValueClass]:
    """Class per revenue, in their order, by where the member's cumulative share starts (highest first).
    Revenue of zero (or below) is D; equal revenues start together and get the same class."""
    positive = sorted((r for r in revenues if r > 0), reverse=True)
    total = sum(positive, Decimal(0))
    starts: dict[Decimal, Decimal] = {}
    running = Decimal(0)
    for revenue in positive:
        starts.setdefault(revenue, running)
        running += revenue
    return [_class_at(starts[r], total) if r > 0 else "D" for r in revenues]


def _class_at(start: Decimal, total: Decimal) -> ValueClass:
    for value_class, bound in CLASS_BOUNDS:
        if start < bound * total:
            return value_class
    return "D"


def pareto_share(revenues: Sequence[Decimal]) -> Decimal | None:
    """The revenue share of the top 20% of members (the Lorenz curve at 80%); None without revenue."""
    ordered = sorted((max(r, Decimal(0)) for r in revenues), reverse=True)
    total = sum(ordered, Decimal(0))
    if total <= 0:
        return None
    top = PARETO_FRACTION * len(ordered)
    whole = int(top)
    share = sum(ordered[:whole], Decimal(0))
    if whole < len(ordered):
        share += (top - whole) * ordered[whole]
    return share / total


def retention_rate(histories: Iterable[History]) -> Decimal | None:
    """Of the members who bought in the previous window, the share who bought in the current one."""
    before = again = 0
    for history in histories:
        if history.bought_in_previous_window:
            before += 1
            again += history.bought_in_window
    return Decimal(again) / before if before else None


def expected_lifetime_years(retention: Decimal | None) -> Decimal:
    """r / (1 - r): the expected number of further years of a member who stays each year with probability r."""
    r = min(DEFAULT_RETENTION if retention is None else retention, MAX_RETENTION)
    return r / (1 - r)


def clv_estimate(history: History, lifetime_years: Decimal, params: Params) -> Decimal:
    """Average order value x purchases per year x expected remaining lifetime, to the cent."""
    if history.window_purchases == 0:
        return Decimal(0).quantize(CENT)
    average_order = history.window_revenue / history.window_purchases
    per_year = history.window_purchases * DAYS_PER_YEAR / params.window_days
    return (average_order * per_year * lifetime_years).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class MemberFacts:
    member_id: str
    status: str | None
    enrolled_at: datetime  # or when tiers first saw the member, when it never heard of the enrolment
    history: History

    @property
    def scored(self) -> bool:
        return self.status in SCORED_STATUSES and self.history.purchases > 0


@dataclass(frozen=True)
class Segment:
    recency: int
    frequency: int
    monetary: int
    value_class: ValueClass
    lifecycle: Lifecycle
    clv_estimate: Decimal


@dataclass(frozen=True)
class Overview:
    """What one run found about the whole program."""

    scored: int
    revenue: Decimal
    top_20pct_revenue_share: Decimal | None
    retention_rate: Decimal | None
    expected_lifetime_years: Decimal


def unscored(facts: MemberFacts, now: datetime, params: Params, lifetime_years: Decimal) -> Segment:
    """A member outside the base, or one not scored yet: RFM 1, class D; lifecycle and CLV from their own
    purchases (CLV 0 outside the base)."""
    clv = clv_estimate(facts.history, lifetime_years, params) if facts.scored else Decimal(0).quantize(CENT)
    return Segment(1, 1, 1, "D", lifecycle(facts.enrolled_at, facts.history, now, params), clv)


def segment_all(members: Sequence[MemberFacts], now: datetime, params: Params) -> tuple[dict[str, Segment], Overview]:
    """Every member's segment in one pass, and the program's overview."""
    lifetime = expected_lifetime_years(retention := retention_rate(m.history for m in members))
    base = [m for m in members if m.scored]

    def scores(key: Callable[[History], Any]) -> list[int]:
        return quintile_scores([key(m.history) for m in base])

    revenues = [m.history.window_revenue for m in base]
    rfm = zip(scores(lambda h: h.last_at), scores(lambda h: h.window_purchases), scores(lambda h: h.window_revenue),
              value_classes(revenues), strict=True)
    result = {m.member_id: unscored(m, now, params, lifetime) for m in members}
    for member, (r, f, m, value_class) in zip(base, rfm, strict=True):
        result[member.member_id] = Segment(
            r, f, m, value_class, lifecycle(member.enrolled_at, member.history, now, params),
            clv_estimate(member.history, lifetime, params),
        )
    overview = Overview(
        scored=len(base), revenue=sum(revenues, Decimal(0)), top_20pct_revenue_share=pareto_share(revenues),
        retention_rate=retention, expected_lifetime_years=lifetime,
    )
    return result, overview
