"""Pure rules of the points service: earning arithmetic, refund reversal, the order lots are used in and how a
credit moves a member's figures.

No I/O here: the use cases in service/ gather the facts, these functions decide.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_FLOOR, Decimal
from typing import Protocol

BASE = "base"
TIER = "tier"
MAX_POINTS_PER_PURCHASE = 1_000_000_000  # the program's default cap


@dataclass(frozen=True)
class Line:
    amount: Decimal
    category: str | None = None
    sku: str | None = None


@dataclass(frozen=True)
class PurchaseFacts:
    lines: tuple[Line, ...]
    occurred_at: datetime  # an instant; its weekday and month are read in the program's time zone
    store_id: str | None = None
    channel: str | None = None

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))


@dataclass(frozen=True)
class Window:
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    days_of_week: frozenset[int] = frozenset()  # ISO: 1 = Monday ... 7 = Sunday; empty = every day

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (in the program's time zone, which its weekday is read in) is in the window."""
        if self.valid_from is not None and moment < self.valid_from:
            return False
        if self.valid_until is not None and moment >= self.valid_until:
            return False
        return not self.days_of_week or moment.isoweekday() in self.days_of_week


@dataclass(frozen=True)
class MemberFacts:
    first_purchase: bool = False
    birth_month: int | None = None
    birthday_bonus_year: int | None = None  # the last year a birthday bonus was given
    tier_id: str | None = None
    value_class: str | None = None  # A-D, as tiers' segmentation last said; None before it has
    lifecycle: str | None = None
    enrolled_at: datetime | None = None
    member_id: str | None = None  # what a rule's holdout group is drawn by


def held_out(rule_id: str, member_id: str | None, holdout_pct: int) -> bool:
    """Whether the member is in the rule's control group: a stable hash of rule and member, so the same
    member is always in the same group of a rule, the groups of two rules are independent, and no one can
    choose their group. ``holdout_pct`` in 10,000ths of the hash range is the share held out."""
    if not holdout_pct or member_id is None:
        return False
    digest = hashlib.sha256(f"{rule_id}\x1f{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < holdout_pct * 100


@dataclass(frozen=True)
class Audience:
    """Whom a rule is for: every criterion given must hold (a list holds when it has the member's value; a
    member whose tier or segment points has not learned yet is in no list)."""

    tiers: frozenset[str] = frozenset()
    value_classes: frozenset[str] = frozenset()
    lifecycles: frozenset[str] = frozenset()
    enrolled_within_days: int | None = None

    def admits(self, member: MemberFacts, moment: datetime) -> bool:
        """Whether ``member`` is in the audience at ``moment`` (the purchase's instant, or the bonus's)."""
        if self.enrolled_within_days is not None and (
                member.enrolled_at is None or member.enrolled_at < moment - timedelta(days=self.enrolled_within_days)):
            return False
        return ((not self.tiers or member.tier_id in self.tiers)
                and (not self.value_classes or member.value_class in self.value_classes)
                and (not self.lifecycles or member.lifecycle in self.lifecycles))


EVERYONE = Audience()


@dataclass(frozen=True)
class MultiplierRule:
    rule_id: str
    factor: Decimal
    categories: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    window: Window = field(default_factory=Window)
    audience: Audience = EVERYONE
    limits: Limits | None = None
    holdout_pct: int = 0

    def matches(self, purchase: PurchaseFacts, line: Line) -> bool:
        return matches_line(self, purchase, line)


class LineCriteria(Protocol):
    @property
    def categories(self) -> frozenset[str]: ...
    @property
    def skus(self) -> frozenset[str]: ...
    @property
    def stores(self) -> frozenset[str]: ...
    @property
    def channels(self) -> frozenset[str]: ...


def matches_line(rule: LineCriteria, purchase: PurchaseFacts, line: Line) -> bool:
    """A multiplier's or a goal's ``match``: every criterion given must match (a list matches when it holds
    the value)."""
    return (
        (not rule.categories or line.category in rule.categories)
        and (not rule.skus or line.sku in rule.skus)
        and (not rule.stores or purchase.store_id in rule.stores)
        and (not rule.channels or purchase.channel in rule.channels)
    )


@dataclass(frozen=True)
class BonusRule:
    rule_id: str
    points: int
    trigger: str  # first_purchase | enrollment | birthday_month | referral | min_spend
    min_spend: Decimal | None = None
    window: Window = field(default_factory=Window)
    audience: Audience = EVERYONE
    limits: Limits | None = None
    holdout_pct: int = 0


@dataclass(frozen=True)
class Earning:
    points: int
    breakdown: list[tuple[str, int]]
    bonus_points: int = 0
    birthday_year: int | None = None  # the year (in the program's time zone) a birthday bonus was given for
    # Rules with a holdout group whose window and audience took in this purchase's member, given or held out:
    # the members a holdout report compares.
    exposed: tuple[str, ...] = ()

    @property
    def birthday_bonus(self) -> bool:
        return self.birthday_year is not None

    @property
    def rule_ids(self) -> list[str]:
        return [rule_id for rule_id, _ in self.breakdown if rule_id not in (BASE, TIER)]


def floor_points(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def compute_earning(
    purchase: PurchaseFacts,
    *,
    points_per_unit: Decimal,
    excluded_categories: frozenset[str] | set[str] = frozenset(),
    multipliers: list[MultiplierRule] | tuple[MultiplierRule, ...] = (),
    bonuses: list[BonusRule] | tuple[BonusRule, ...] = (),
    tier_multiplier: Decimal = Decimal(1),
    member: MemberFacts = MemberFacts(),
    time_zone: tzinfo = UTC,
    max_points: int = MAX_POINTS_PER_PURCHASE,
) -> Earning:
    """Points for a purchase and which rule gave how many.

    points = floor(sum of eligible line amounts x points per unit x matching multipliers x tier multiplier)
    + matching bonuses, at most ``max_points``. Each multiplier is credited with what it adds when applied
    after the ones before it (in rule id order), and ``tier`` with the rest, so the breakdown always sums to
    the total (for a capped purchase see ``capped``). Days of the week and the birthday month are those of
    the purchase's instant in ``time_zone`` (the program's), whatever offset the purchase was sent with. A
    rule whose audience does not admit the member gives nothing, nor does one whose holdout group the
    member is in.
    """
    local = purchase.occurred_at.astimezone(time_zone)
    eligible = [line for line in purchase.lines if line.category not in excluded_categories]
    exposed: list[str] = []

    def applies(rule: MultiplierRule | BonusRule) -> bool:
        if not (rule.window.contains(local) and rule.audience.admits(member, purchase.occurred_at)):
            return False
        if rule.holdout_pct:
            exposed.append(rule.rule_id)
            return not held_out(rule.rule_id, member.member_id, rule.holdout_pct)
        return True

    active = sorted((rule for rule in multipliers if applies(rule)), key=lambda r: r.rule_id)
    factors = [Decimal(1)] * len(eligible)
    raw = sum((line.amount for line in eligible), Decimal(0)) * points_per_unit
    breakdown: list[tuple[str, int]] = [(BASE, floor_points(raw))]
    previous = breakdown[0][1]
    for rule in active:
        touched = False
        for i, line in enumerate(eligible):
            if rule.matches(purchase, line):
                factors[i] *= rule.factor
                touched = True
        if not touched:
            continue
        now = floor_points(sum((ln.amount * f for ln, f in zip(eligible, factors, strict=True)), Decimal(0))
                           * points_per_unit)
        breakdown.append((rule.rule_id, now - previous))
        previous = now
    with_tier = floor_points(
        sum((ln.amount * f for ln, f in zip(eligible, factors, strict=True)), Decimal(0))
        * points_per_unit * tier_multiplier
    )
    if with_tier != previous:
        breakdown.append((TIER, with_tier - previous))

    bonus_points = given = 0
    birthday: int | None = None
    for bonus in sorted(bonuses, key=lambda b: b.rule_id):
        if bonus.trigger in ("enrollment", "referral") or not applies(bonus):
            continue  # enrollment and referral bonuses are given by their own events, not by this purchase
        if bonus.trigger == "first_purchase" and not member.first_purchase:
            continue
        if bonus.trigger == "min_spend" and (bonus.min_spend is None or purchase.total < bonus.min_spend):
            continue
        if bonus.trigger == "birthday_month":
            if member.birth_month != local.month or member.birthday_bonus_year == local.year:
                continue
            birthday = local.year
        breakdown.append((bonus.rule_id, bonus.points))
        bonus_points += bonus.points
        given += 1
    total = max(with_tier, 0) + bonus_points
    if total > max_points:
        breakdown = capped(breakdown, max_points)
        total = max_points
        bonus_points = sum(points for _, points in breakdown[len(breakdown) - given:])  # what they kept
    return Earning(points=total, breakdown=breakdown, bonus_points=bonus_points, birthday_year=birthday,
                   exposed=tuple(sorted(exposed)))


def capped(breakdown: list[tuple[str, int]], cap: int) -> list[tuple[str, int]]:
    """The breakdown of a purchase that would earn more than ``cap``: the items counted in order, each gives
    what takes the running sum up to the cap and no further (the last ones give 0), so the figures sum to
    ``cap`` and none is beyond it. The running sums of a breakdown are never negative (each is a floor of a
    product of amounts and positive factors, or that plus bonus points)."""
    out: list[tuple[str, int]] = []
    running = kept = 0
    for rule_id, points in breakdown:
        running += points
        now = min(running, cap)
        out.append((rule_id, now - kept))
        kept = now
    return out


def reversal_for_refund(
    *, earned_points: int, bonus_points: int, already_reversed: int, total: Decimal, refunded_before: Decimal,
    amount: Decimal,
) -> int:
    """Points a refund takes back: the purchase's non-bonus points in proportion to the amount refunded so far
    (cumulative, so several partial refunds add up exactly to a full one), plus the bonus points only when the
    purchase is refunded in full."""
    refunded = refunded_before + amount
    base = earned_points - bonus_points
    target = base if refunded >= total or total == 0 else floor_points(Decimal(base) * refunded / total)
    if refunded >= total:
        target += bonus_points
    return max(target - already_reversed, 0)


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


# --- how a credit moves the figures ------------------------------------------------------------------


EARNING_KINDS = frozenset({"earn", "bonus"})  # the credits that count in ``lifetime_earned``


def lot_remaining(points: int, available: int) -> int:
    """What a new lot of ``points`` keeps when it becomes available: a debt (``available`` below zero, after
    a refund took back points already spent) is repaid first."""
    return points - min(points, max(-available, 0))


def expiry_for(earned_at: datetime, expiry_days: int) -> datetime:
    return earned_at + timedelta(days=expiry_days)


@dataclass(frozen=True, slots=True)
class CreditFigures:
    """A member's figures after a credit, and the new lot's."""

    available: int
    pending: int
    lifetime_earned: int
    remaining: int  # what the lot keeps: all of it while pending, less the debt it repays when available
    lot_pending: bool  # the lot waits for ``available_at``
    available_at: datetime  # the lot's: when its points are (or were) available
    held: int = 0  # in holds of the checkout: a credit leaves them as they are

    @property
    def balance_after(self) -> int:
        """What the credit's ledger entry records: the sum of the ledger once the credit is in it."""
        return self.available + self.pending + self.held


def credit_figures(
    kind: str, points: int, *, available: int, pending: int, lifetime_earned: int, now: datetime,
    available_at: datetime | None = None, held: int = 0,
) -> CreditFigures:
    """The figures after crediting ``points`` as a new lot (``kind`` is the ledger entry's kind) to a member
    whose figures are ``available``, ``pending`` and ``lifetime_earned``.

    The lot is pending while ``available_at`` is still ahead of ``now``: ``pending`` grows by the points and
    the lot keeps all of them. Otherwise ``available`` grows by the points and the lot keeps what is left
    once a debt (``available`` below zero) is repaid. Earning kinds also count in ``lifetime_earned``.
    """
    earned = lifetime_earned + points if kind in EARNING_KINDS else lifetime_earned
    if available_at is not None and available_at > now:
        return CreditFigures(available, pending + points, earned, points, True, available_at, held)
    return CreditFigures(available + points, pending, earned, lot_remaining(points, available), False,
                         available_at or now, held)


# --- identifiers -------------------------------------------------------------------------------------------

IDENTIFIER_KINDS = ("card", "phone", "email", "external")


def normalize_identifier(kind: str, value: str) -> str:
    """The form two handles of one kind are compared in: a phone by its digits, an e-mail trimmed and
    case-insensitively, a card or an external id trimmed, as given. Empty when nothing is left to compare."""
    value = value.strip()
    if kind == "phone":
        return "".join(char for char in value if char in "0123456789")
    if kind == "email":
        return value.lower()
    return value


# --- the checkout ------------------------------------------------------------------------------------------


def points_value(points: int, point_value: Decimal, places: int) -> Decimal:
    """What ``points`` are worth in the program's currency, rounded down to its minor unit (points never pay
    more than they are worth)."""
    return (Decimal(points) * point_value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR)


def redeemable_points(*, total: Decimal, available: int, point_value: Decimal, max_share: Decimal,
                      min_points: int) -> int:
    """The most points a member may pay for an order of ``total``: what they have available, up to the
    program's ``max_share`` of the order; none when that is fewer than the program's ``min_points``."""
    if point_value <= 0:
        return 0
    most = min(max(available, 0), floor_points(total * max_share / point_value))
    return most if most >= max(min_points, 1) else 0


def split_parts(parts: list[list[int]], points: int) -> tuple[list[list[int]], list[list[int]]]:
    """A capture of ``points`` of a hold's lot parts (soonest-expiring first): the parts it spends, taken
    from the front as every spend takes, and the parts that go back."""
    spent: list[list[int]] = []
    back: list[list[int]] = []
    left = points
    for lot_id, part in parts:
        take = min(part, max(left, 0))
        left -= take
        if take:
            spent.append([lot_id, take])
        if part - take:
            back.append([lot_id, part - take])
    return spent, back


def net_of_points_paid(lines: tuple[Line, ...], paid: Decimal) -> tuple[Line, ...]:
    """The lines of a purchase paid ``paid`` with points, each reduced in proportion, so that what earns is
    the total minus the value of the points paid (unless the program lets the points-paid part earn). Each
    line is ``amount x money / total`` (multiplied first, so no rounded ratio is involved) and the last takes
    the remainder: the lines add up to the money part exactly."""
    total = sum((line.amount for line in lines), Decimal(0))
    if paid <= 0 or total <= 0:
        return lines
    money = max(total - paid, Decimal(0))
    scaled = [line.amount * money / total for line in lines[:-1]]
    scaled.append(money - sum(scaled, Decimal(0)))
    return tuple(Line(amount, line.category, line.sku) for amount, line in zip(scaled, lines, strict=True))


def points_to_return(*, points_paid: int, returned_before: int, total: Decimal, refunded: Decimal) -> int:
    """Points a refund gives back of a purchase paid partly with points: the captured points in proportion to
    the amount refunded so far (cumulative, so partial refunds add up exactly to all of them)."""
    if points_paid <= 0:
        return 0
    target = points_paid if refunded >= total or total == 0 else floor_points(Decimal(points_paid) * refunded / total)
    return max(target - returned_before, 0)


# --- limits of a rule ----------------------------------------------------------------------------------------

PERIODS = ("day", "week", "month", "quarter", "year", "rule")


@dataclass(frozen=True)
class Limits:
    per_member_points: int | None = None
    per_member_period: str = "rule"  # one of PERIODS; "rule": the rule's whole life
    budget_points: int | None = None


def period_key(local: datetime, period: str) -> str:
    """The name of the period ``local`` (a moment in the program's time zone) falls in: 2026-11-21,
    2026-W47 (ISO weeks, Monday first), 2026-11, 2026-Q4, 2026, or ``rule``."""
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{local.year}-{local.month:02d}"
    if period == "quarter":
        return f"{local.year}-Q{(local.month - 1) // 3 + 1}"
    if period == "year":
        return str(local.year)
    return "rule"


def allowance(points: int, limits: Limits, *, member_used: int, budget_used: int) -> int:
    """What a rule that would give ``points`` may give: what is left of the member's limit for the period
    and of the rule's budget, whichever is less, and never below zero."""
    left = points
    if limits.per_member_points is not None:
        left = min(left, limits.per_member_points - member_used)
    if limits.budget_points is not None:
        left = min(left, limits.budget_points - budget_used)
    return max(left, 0)


def within_limits(earned: Earning, grants: dict[str, int], bonuses: list[BonusRule]) -> Earning:
    """The earning with each limited rule's item cut to its grant; the total (and the bonus part) follow, so
    the breakdown still sums to the points. A birthday bonus cut to nothing was not given: the member may
    still get one later in the year."""
    breakdown = [(rule_id, min(points, grants[rule_id]) if rule_id in grants and points > 0 else points)
                 for rule_id, points in earned.breakdown]
    cut = {rule_id: before - after for (rule_id, before), (_, after) in zip(earned.breakdown, breakdown, strict=True)}
    bonus_ids = {bonus.rule_id for bonus in bonuses}
    birthday_ids = {bonus.rule_id for bonus in bonuses if bonus.trigger == "birthday_month"}
    birthday_given = any(points > 0 for rule_id, points in breakdown if rule_id in birthday_ids)
    return replace(earned, points=earned.points - sum(cut.values()), breakdown=breakdown,
                   bonus_points=earned.bonus_points - sum(v for k, v in cut.items() if k in bonus_ids),
                   birthday_year=earned.birthday_year if birthday_given else None)


# --- holdout reports ---------------------------------------------------------------------------------

Z_95 = Decimal("1.959964")  # the normal distribution's 97.5th percentile
CENTS = Decimal("0.01")


@dataclass(frozen=True)
class Uplift:
    difference: Decimal  # mean spend per member, treated minus control
    interval_95: tuple[Decimal, Decimal] | None


def spend_uplift(treated: list[Decimal], control: list[Decimal]) -> Uplift | None:
    """How much more the treated members spent each than the control members, with a 95% interval: the
    difference of the two means, plus or minus 1.96 Welch standard errors (each group's own variance, so
    unequal groups and spreads are fine). Every member of a group counts, those who bought nothing with 0.
    None without a member in both groups; no interval while a group has fewer than two members (no spread
    to read). Rounded to cents at the end only."""
    if not treated or not control:
        return None
    mean_t, mean_c = _mean(treated), _mean(control)
    difference = mean_t - mean_c
    if len(treated) < 2 or len(control) < 2:
        return Uplift(difference.quantize(CENTS), None)
    error = (_variance(treated, mean_t) / len(treated) + _variance(control, mean_c) / len(control)).sqrt()
    low, high = difference - Z_95 * error, difference + Z_95 * error
    return Uplift(difference.quantize(CENTS), (low.quantize(CENTS), high.quantize(CENTS)))


def _mean(values: list[Decimal]) -> Decimal:
    return sum(values, Decimal(0)) / len(values)


def _variance(values: list[Decimal], mean: Decimal) -> Decimal:
    """The sample variance (n - 1)."""
    return sum(((value - mean) ** 2 for value in values), Decimal(0)) / (len(values) - 1)


# --- goals -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoalRule:
    """A target over a period: ``metric`` (spend or purchases) of the lines it counts reaches ``target``."""

    rule_id: str
    metric: str  # spend | purchases
    target: Decimal
    period: str  # month | quarter | year | rolling
    categories: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    reward_points: int | None = None
    rebate_pct: Decimal | None = None
    reward_id: str | None = None
    window: Window = field(default_factory=Window)
    audience: Audience = EVERYONE
    holdout_pct: int = 0

    def counts(self, purchase: PurchaseFacts, line: Line) -> bool:
        return matches_line(self, purchase, line)


@dataclass(frozen=True)
class GoalPurchase:
    facts: PurchaseFacts
    refunded: Decimal = Decimal(0)  # the amount refunded so far


def goal_progress(goal: GoalRule, purchases: list[GoalPurchase], time_zone: tzinfo = UTC) -> Decimal:
    """What the purchases give towards the goal: the amount of the lines it counts, less the same share of
    each purchase's refunds as of its total (spend); or the purchases with a counted line that are not
    refunded in full (purchases). Purchases outside the goal's window give nothing."""
    progress = Decimal(0)
    for purchase in purchases:
        facts = purchase.facts
        if not goal.window.contains(facts.occurred_at.astimezone(time_zone)):
            continue
        counted = sum((line.amount for line in facts.lines if goal.counts(facts, line)), Decimal(0))
        total = facts.total
        if counted <= 0 or purchase.refunded >= total:
            continue
        if goal.metric == "purchases":
            progress += 1
        else:
            progress += counted - counted * purchase.refunded / total if purchase.refunded else counted
    return progress


def goal_period(local: datetime, period: str) -> tuple[str, datetime, datetime]:
    """The calendar period ``local`` (a moment in the program's zone) falls in: its name (``2027-03``,
    ``2027-Q1``, ``2027``) and its first and next-after-last midnights in that zone. Built from the local
    calendar, so a period across a change of daylight saving time still starts and ends at local midnight."""
    zone = local.tzinfo
    if period == "month":
        start = datetime(local.year, local.month, 1, tzinfo=zone)
        end = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=zone)
    elif period == "quarter":
        first = (local.month - 1) // 3 * 3 + 1
        start = datetime(local.year, first, 1, tzinfo=zone)
        end = datetime(local.year + (first + 3) // 13, (first + 2) % 12 + 1, 1, tzinfo=zone)
    elif period == "year":
        start, end = datetime(local.year, 1, 1, tzinfo=zone), datetime(local.year + 1, 1, 1, tzinfo=zone)
    else:
        raise ValueError(f"not a calendar period: {period}")
    return period_key(local, period), start, end


def closed_periods(goal: GoalRule, first: datetime, now: datetime, pending_days: int, time_zone: tzinfo
                   ) -> list[tuple[str, datetime, datetime]]:
    """The calendar periods of a goal from the one ``first`` falls in that have ended and whose return
    window (``pending_days`` after the end) has passed by ``now``, oldest first; they are due to settle."""
    out = []
    key, start, end = goal_period(first.astimezone(time_zone), goal.period)
    while end + timedelta(days=pending_days) <= now:
        out.append((key, start, end))
        key, start, end = goal_period(end.astimezone(time_zone), goal.period)
    return out


def goal_points(goal: GoalRule, counted_spend: Decimal, point_value: Decimal) -> int:
    """The points a reached goal gives: its points, or points worth ``rebate_pct`` of the spend it counted
    (at the program's point value, rounded down); a catalog reward gives none."""
    if goal.reward_points is not None:
        return goal.reward_points
    if goal.rebate_pct is not None:
        return floor_points(counted_spend * goal.rebate_pct / 100 / point_value)
    return 0


def cards_filled(progress: Decimal, target: Decimal) -> int:
    """How many times a rolling goal's target fits in what it has counted since it began (a stamp card of 10
    is filled once at 10 to 19, twice at 20). Refunds lower the count, so a card filled and then returned is
    taken off the next one."""
    return max(int(progress // target), 0)


# --- referrals -------------------------------------------------------------------------------------------

REFERRAL = "referral"  # the rule id of the program's referral bonuses in ledger entries and events
# The referral code's alphabet: digits and capitals without those read alike (0/O, 1/I/L) and without U (no
# accidental words); 12 of them drawn by ``secrets`` are about 59 bits.
REFERRAL_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
REFERRAL_CODE_LENGTH = 12


def normalize_referral_code(code: str) -> str:
    """A code as it is stored: capitals, without the spaces and hyphens people type into it."""
    return "".join(char for char in code.upper() if char not in " -")


@dataclass(frozen=True)
class ReferralSettings:
    """The program's ``referral`` setting."""

    referrer_points: int
    referee_points: int
    min_spend: Decimal = Decimal(0)
    max_per_referrer_per_year: int | None = None


def referral_refusal(*, member_id: str, referrer_id: str, referrer_active: bool,
                     emails: tuple[str | None, ...], phones: tuple[str | None, ...],
                     referrer_emails: tuple[str, ...], referrer_phones: tuple[str, ...]) -> str | None:
    """Why a member may not be referred by the owner of a code, or None when it may: the code is its own, its
    owner is not active, or the owner holds one of its e-mails or phones (compared normalised, as identifiers
    are). The reason is safe to show: it names no e-mail or phone."""
    if referrer_id == member_id:
        return "a member cannot use its own referral code"
    if not referrer_active:
        return "the referral code's owner is not an active member"
    mine = {("email", normalize_identifier("email", e)) for e in emails if e} \
        | {("phone", normalize_identifier("phone", p)) for p in phones if p}
    theirs = {("email", normalize_identifier("email", e)) for e in referrer_emails} \
        | {("phone", normalize_identifier("phone", p)) for p in referrer_phones}
    if {(kind, key) for kind, key in mine if key} & theirs:
        return "the referral code's owner shares this member's e-mail or phone"
    return None


def referral_outcome(settings: ReferralSettings, *, spend: Decimal, rewarded_this_year: int) -> str | None:
    """What a purchase of ``spend`` (its total less what points paid) does to a referee's referral still open:
    ``rewarded`` (both sides get their points), ``capped`` (the referrer has had the most referrals the
    program pays in the purchase's year: the referral closes unpaid), or None (below ``min_spend``: it stays
    open for a later purchase)."""
    if spend < settings.min_spend:
        return None
    cap = settings.max_per_referrer_per_year
    if cap is not None and rewarded_this_year >= cap:
        return "capped"
    return "rewarded"
