"""The points API's request and response bodies."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.http.types import (
    PLAIN_DECIMAL,
    Amount,
    Body,
    CalendarDate,
    ClientId,
    Count,
    Currency,
    Multiplier,
    Points,
    Reason,
    ScheduleTime,
    Timestamp,
    check_currency_decimals,
)

MemberStatus = Literal["active", "suspended", "closed"]


class Strict(Body):
    """A request body: no unknown fields, no text a database cannot store."""

    model_config = ConfigDict(extra="forbid")


@cache
def _zone_names() -> frozenset[str]:
    # The IANA names this machine knows; "localtime" is a name for this machine's own setting, not a zone.
    return frozenset(zoneinfo.available_timezones() - {"localtime"})


def _iana_zone(name: str) -> str:
    if name not in _zone_names():
        raise ValueError(f"{name!r} is not an IANA time zone name such as \"Europe/Paris\" or \"UTC\"")
    return name


TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_iana_zone),
                     Field(examples=["America/New_York"])]


class MemberIn(Strict):
    status: MemberStatus | None = Field(None, description="Only an `admin` key may change it.")
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(None, max_length=32, pattern=r"^\+?[0-9 ()./-]{3,32}$")
    birth_date: CalendarDate | None = None
    referred_by: ClientId | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"name": "Ada Lovelace", "email": "ada@example.com", "birth_date": "1990-12-10"}]})


class Member(BaseModel):
    """A member. `email` and `phone` are null in every answer to a store-bound key (one lent to a till or a
    shop, bound to its stores), whatever is stored; keys of the whole program see them."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "member_id": "C-1001", "name": "Ada Lovelace", "email": "ada@example.com", "phone": None,
        "birth_date": "1990-12-10", "referred_by": None, "status": "active", "enrolled_at": "2026-11-20T10:00:00Z",
        "tier": "bronze"}]})

    member_id: str
    name: str | None
    email: str | None = Field(description="Null for a store-bound key")
    phone: str | None = Field(description="Null for a store-bound key")
    birth_date: date | None
    referred_by: str | None
    status: MemberStatus
    enrolled_at: datetime
    tier: str | None


class Expiring(BaseModel):
    points: int
    expires_at: datetime


class Balance(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "member_id": "C-1001", "available": 270, "pending": 0, "held": 0, "lifetime_earned": 390,
        "lifetime_spent": 100, "expiring": [{"points": 40, "expires_at": "2026-12-15T10:15:00Z"}], "tier": "bronze",
        "as_of": "2026-11-21T09:30:00Z"}]})

    member_id: str
    available: int = Field(description="Spendable now; negative when a refund took back points already spent")
    pending: int = Field(description="Earned but inside the return window (`pending_days`)")
    held: int = Field(0, description="Set aside by holds of the checkout: out of `available` until the hold is "
                                     "captured (spent), voided or expires (back in `available`)")
    lifetime_earned: int
    lifetime_spent: int
    expiring: list[Expiring]
    tier: str | None
    as_of: datetime


class BalanceShort(BaseModel):
    available: int
    pending: int


class PurchaseLine(Strict):
    sku: str = Field(min_length=1, max_length=64)
    category: str | None = Field(None, max_length=64)
    quantity: Count = Field(gt=0, le=100_000)
    unit_price: Amount


class PointsPaid(Strict):
    hold_id: ClientId = Field(description="A hold of the purchase's member, captured or still held (then this "
                                          "purchase captures all of it)")


POINTS_PAID_DOC = ("Part of the order paid with points: the hold that pays it. Unless the program's "
                   "`redemption.earn_on_points_paid`, the points-paid value does not earn (every line earns in "
                   "proportion to the part paid in money), and a refund gives back the same share of the points.")


class Basket(Strict):
    """What a purchase and a quote share: the member, the place, the moment and what was bought."""

    member_id: ClientId
    store_id: ClientId | None = None
    channel: str | None = Field(None, max_length=32)
    occurred_at: Timestamp
    currency: Currency
    total: Amount
    lines: list[PurchaseLine] | None = Field(None, max_length=500)
    points_paid: PointsPaid | None = Field(None, description=POINTS_PAID_DOC)

    @model_validator(mode="after")
    def _lines_add_up(self) -> Basket:
        check_currency_decimals(self.total, self.currency)
        for line in self.lines or ():
            check_currency_decimals(line.unit_price, self.currency)
        if self.lines:
            lines_total = sum((line.unit_price * line.quantity for line in self.lines), Decimal(0))
            if lines_total != self.total:
                raise ValueError(f"the lines add up to {lines_total}, not to the total {self.total}")
        return self


class PurchaseIn(Basket):
    purchase_id: ClientId

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "purchase_id": "store-12:r-000123", "member_id": "C-1001", "store_id": "store-12", "channel": "pos",
        "occurred_at": "2026-11-20T10:15:00Z", "currency": "USD", "total": "20.00",
        "lines": [{"sku": "A-1", "category": "grocery", "quantity": 2, "unit_price": "10.00"}]}, {
        "purchase_id": "store-12:r-000124", "member_id": "C-1001", "store_id": "store-12", "channel": "pos",
        "occurred_at": "2026-11-20T10:16:00Z", "currency": "USD", "total": "20.00",
        "lines": [{"sku": "A-1", "category": "grocery", "quantity": 2, "unit_price": "10.00"}],
        "points_paid": {"hold_id": "store-12:h-000123"}}]})


BREAKDOWN_DOC = (
    "How many points each rule gave, in order: `base` (the base rate), each matching multiplier (in rule id "
    "order: what it adds applied after the ones before), `tier` (the member's tier multiplier), then each "
    "bonus. The figures always sum to `points_earned`. A purchase that would earn more than the program's "
    "`max_points_per_purchase` is capped at it: the items are counted in this order and each gives only what "
    "takes the sum up to the cap, so the last ones give less or 0 (none is beyond the cap).")


class BreakdownItem(BaseModel):
    rule_id: str
    points: int


class PurchaseResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "purchase_id": "store-12:r-000123", "member_id": "C-1001", "points_earned": 40, "status": "credited",
        "breakdown": [{"rule_id": "base", "points": 20}, {"rule_id": "double-grocery", "points": 20}],
        "balance": {"available": 140, "pending": 0}}]})

    purchase_id: str
    member_id: str
    points_earned: int = Field(description="At most the program's `max_points_per_purchase`")
    status: Literal["credited", "pending"]
    breakdown: list[BreakdownItem] = Field(description=BREAKDOWN_DOC)
    balance: BalanceShort


TIME_ZONE_DOC = ("Where the days of the week of promotions (`days_of_week`) and birthday months are read: an "
                 "IANA name (`Europe/Paris`); never the offset a purchase was sent with")
CAP_DOC = ("The most points one purchase may earn (base, promotions, tier and bonuses together); see "
           "`breakdown` of a purchase for how a capped purchase is shown")


PointValue = Annotated[Decimal, PLAIN_DECIMAL, Field(gt=0, le=10**12, max_digits=18, decimal_places=6,
                                                     allow_inf_nan=False, examples=["0.01"])]
Share = Annotated[Decimal, PLAIN_DECIMAL, Field(ge=0, le=1, max_digits=5, decimal_places=4, allow_inf_nan=False,
                                                examples=["1"])]


class RedemptionSettings(Strict):
    """Paying with points at the checkout."""

    point_value: PointValue = Field(
        Decimal("0.01"), description="What one point is worth in the program's currency")
    min_points: Points = Field(0, ge=0, description="The fewest points a hold may take")
    max_share: Share = Field(
        Decimal(1), description="The largest share of an order (its `order_total`) that points may pay")
    hold_minutes: Count = Field(15, ge=1, le=10_080, description="How long a hold lives before it goes back "
                                                                "by itself (at most a week)")
    earn_on_points_paid: bool = Field(False, description="Whether the part of a purchase paid with points earns "
                                                         "points too")

    @field_validator("earn_on_points_paid", mode="before")
    @classmethod
    def _a_boolean(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value


class ProgramIn(Strict):
    currency: Currency
    points_per_unit: Amount = Field(lt=10**8, description="Points per unit of the currency (below 10**8: what "
                                                          "the column holds, 8 digits and 4 decimals)")
    expiry_days: Count = Field(ge=1, le=36_500)
    pending_days: Count = Field(ge=0, le=365)
    excluded_categories: list[str] = Field(default_factory=list, max_length=500)
    time_zone: TimeZone = Field("UTC", description=TIME_ZONE_DOC)
    max_points_per_purchase: Points = Field(1_000_000_000, ge=1, le=10**12, description=CAP_DOC)
    redemption: RedemptionSettings = Field(default_factory=RedemptionSettings)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "currency": "USD", "points_per_unit": "1", "expiry_days": 365, "pending_days": 0,
        "excluded_categories": ["tobacco"], "time_zone": "America/New_York",
        "max_points_per_purchase": 1_000_000_000,
        "redemption": {"point_value": "0.01", "min_points": 0, "max_share": "1", "hold_minutes": 15,
                       "earn_on_points_paid": False}}]})


class Program(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "currency": "USD", "points_per_unit": "1", "expiry_days": 365, "pending_days": 0,
        "excluded_categories": ["tobacco"], "time_zone": "America/New_York",
        "max_points_per_purchase": 1_000_000_000,
        "redemption": {"point_value": "0.01", "min_points": 0, "max_share": "1", "hold_minutes": 15,
                       "earn_on_points_paid": False},
        "updated_at": "2026-11-20T09:00:00Z"}]})

    currency: str
    points_per_unit: Decimal
    expiry_days: int
    pending_days: int
    excluded_categories: list[str]
    time_zone: str = Field(description=TIME_ZONE_DOC)
    max_points_per_purchase: int = Field(description=CAP_DOC)
    redemption: RedemptionSettingsOut
    updated_at: datetime


class RedemptionSettingsOut(BaseModel):
    point_value: Decimal
    min_points: int
    max_share: Decimal
    hold_minutes: int
    earn_on_points_paid: bool


# --- refunds, adjustments, transfers, ledger ---------------------------------------------------------


class RefundIn(Strict):
    refund_id: ClientId
    amount: Amount = Field(gt=0)
    occurred_at: Timestamp

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"refund_id": "store-12:rf-9", "amount": "10.00", "occurred_at": "2026-11-21T09:00:00Z"}]})


class RefundResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "refund_id": "store-12:rf-9", "purchase_id": "store-12:r-000123", "points_reversed": 20,
        "balance": {"available": 120, "pending": 0}}]})

    refund_id: str
    purchase_id: str
    points_reversed: int
    points_returned: int = Field(0, description="Of a purchase paid partly with points: the points given back "
                                                "(the refunded share of those its hold paid)")
    balance: BalanceShort


class AdjustmentIn(Strict):
    adjustment_id: ClientId
    points: Points = Field(ge=-1_000_000_000, le=1_000_000_000)
    reason: Reason

    @model_validator(mode="after")
    def _nonzero(self) -> AdjustmentIn:
        if self.points == 0:
            raise ValueError("points must not be zero")
        return self

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"adjustment_id": "ticket-4711", "points": 250, "reason": "Goodwill for a late delivery"}]})


class TransferIn(Strict):
    transfer_id: ClientId
    to_member_id: ClientId
    points: Points = Field(gt=0, le=1_000_000_000)
    reason: Reason | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"transfer_id": "family-2026-1", "to_member_id": "C-1002", "points": 100, "reason": "Household pool"}]})


LEDGER_ENTRY_EXAMPLE: dict[str, Any] = {
    "entry_id": 7, "kind": "adjust", "points": 250, "balance_after": 370, "occurred_at": "2026-11-21T09:10:00Z",
    "adjustment_id": "ticket-4711", "actor": "support-desk", "reason": "Goodwill for a late delivery"}


class LedgerEntry(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [LEDGER_ENTRY_EXAMPLE, {
        "entry_id": 3, "kind": "earn", "points": 40, "balance_after": 140, "occurred_at": "2026-11-20T10:15:00Z",
        "purchase_id": "store-12:r-000123", "rule_ids": ["base", "double-grocery"]}]})

    entry_id: int
    kind: Literal["earn", "bonus", "reversal", "spend", "refund", "expire", "adjust", "transfer_out",
                  "transfer_in"]
    points: int
    balance_after: int = Field(description="available + pending + held after this entry: the sum of the ledger "
                                           "so far")
    occurred_at: datetime
    purchase_id: str | None = None
    refund_id: str | None = None
    redemption_id: str | None = None
    adjustment_id: str | None = None
    transfer_id: str | None = None
    hold_id: str | None = None
    rule_ids: list[str] | None = None
    actor: str | None = None
    reason: str | None = None


class TransferResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "transfer_id": "family-2026-1", "from_member_id": "C-1001", "to_member_id": "C-1002", "points": 100,
        "entries": [
            {"entry_id": 8, "kind": "transfer_out", "points": -100, "balance_after": 270,
             "occurred_at": "2026-11-21T09:20:00Z", "transfer_id": "family-2026-1", "actor": "support-desk",
             "reason": "Household pool"},
            {"entry_id": 9, "kind": "transfer_in", "points": 100, "balance_after": 100,
             "occurred_at": "2026-11-21T09:20:00Z", "transfer_id": "family-2026-1", "actor": "support-desk",
             "reason": "Household pool"}]}]})

    transfer_id: str
    from_member_id: str
    to_member_id: str
    points: int
    entries: list[LedgerEntry]


# --- batches ---------------------------------------------------------------------------------------


class PurchaseBatchIn(Strict):
    purchases: list[dict[str, Any]] = Field(
        min_length=1, max_length=1000,
        description="Up to 1000 purchase bodies; each is validated and answered on its own.")

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        """Replaces Body's check for the whole batch: each purchase is checked as a ``PurchaseIn`` (a Body
        too), so one with text a database cannot store fails alone, as any other bad item does."""
        return value

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"purchases": [
        {"purchase_id": "store-12:r-000124", "member_id": "C-1001", "store_id": "store-12", "channel": "pos",
         "occurred_at": "2026-11-20T11:00:00Z", "currency": "USD", "total": "5.00"},
        {"purchase_id": "store-12:r-000125", "member_id": "C-1001", "store_id": "store-12", "channel": "pos",
         "occurred_at": "2026-11-20T11:05:00Z", "currency": "USD", "total": "7.50"}]}]})


class BatchItemResult(BaseModel):
    purchase_id: str | None
    status: int
    body: dict[str, Any]


class PurchaseBatchResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"results": [
        {"purchase_id": "store-12:r-000124", "status": 201, "body": {
            "purchase_id": "store-12:r-000124", "member_id": "C-1001", "points_earned": 5, "status": "credited",
            "breakdown": [{"rule_id": "base", "points": 5}], "balance": {"available": 145, "pending": 0}}},
        {"purchase_id": "store-12:r-000125", "status": 404, "body": {
            "type": "/problems/member-not-found", "title": "Member not found", "status": 404,
            "detail": "No member 'C-9999'; enroll it with PUT /v1/members/C-9999."}}]}]})

    results: list[BatchItemResult]


# --- earning rules ---------------------------------------------------------------------------------


class RuleWindow(Strict):
    valid_from: ScheduleTime | None = None
    valid_until: ScheduleTime | None = None

    @field_validator("valid_until")
    @classmethod
    def _window_in_order(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("valid_from")
        if value is not None and start is not None and value <= start:
            raise ValueError("valid_until must be after valid_from")
        return value


Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=500)]
Weekday = Annotated[Count, Field(ge=1, le=7)]  # ISO: 1 = Monday ... 7 = Sunday
WEEKDAYS_DOC = "ISO days (1 = Monday ... 7 = Sunday) in the program's `time_zone`; none: every day"


class Match(Strict):
    categories: Names | None = None
    skus: Names | None = None
    stores: Names | None = None
    channels: Names | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Match:
        if not any([self.categories, self.skus, self.stores, self.channels]):
            raise ValueError("match must name at least one of categories, skus, stores, channels")
        return self


ValueClass = Literal["A", "B", "C", "D"]
Lifecycle = Literal["new", "active", "at_risk", "lapsed", "won_back"]


class Audience(Strict):
    """Whom a rule is for; every criterion given must hold. Tiers are learned from ``tier.changed``, value
    classes and lifecycles from ``member.segment_changed``: a member points has not heard of yet is in none."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"lifecycles": ["lapsed"]}, {"value_classes": ["A"]}, {"tiers": ["gold"], "enrolled_within_days": 30}]})

    tiers: Names | None = None
    value_classes: list[ValueClass] | None = Field(None, max_length=4)
    lifecycles: list[Lifecycle] | None = Field(None, max_length=5)
    enrolled_within_days: Count | None = Field(None, ge=1, le=36_500, description=(
        "members enrolled at most this many days before the purchase (or the bonus)"))

    @model_validator(mode="after")
    def _not_empty(self) -> Audience:
        if not (self.tiers or self.value_classes or self.lifecycles or self.enrolled_within_days):
            raise ValueError("audience must name at least one of tiers, value_classes, lifecycles, "
                             "enrolled_within_days")
        return self


Period = Literal["day", "week", "month", "quarter", "year", "rule"]


class Limits(Strict):
    """How much a rule may give: each member per period, and in all. A purchase that would pass a limit gets
    what is left of it, then the rule gives nothing; a refund's reversal gives its share back."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"per_member_points": 500, "per_member_period": "month"}, {"budget_points": 1_000_000},
        {"per_member_points": 100, "per_member_period": "rule", "budget_points": 250_000}]})

    per_member_points: Points | None = Field(None, gt=0, description="the most one member gets from the rule "
                                                                      "in one period")
    per_member_period: Period | None = Field(None, description=(
        "calendar periods in the program's `time_zone` (weeks start on Monday), of the purchase's "
        "`occurred_at`; `rule` (the default): the rule's whole life"))
    budget_points: Points | None = Field(None, gt=0, description="the most the rule gives all members together")

    @model_validator(mode="after")
    def _not_empty(self) -> Limits:
        if self.per_member_points is None and self.budget_points is None:
            raise ValueError("limits must name per_member_points, budget_points or both")
        if self.per_member_period is not None and self.per_member_points is None:
            raise ValueError("per_member_period needs per_member_points")
        return self


class MultiplierRuleIn(RuleWindow):
    rule_id: ClientId
    kind: Literal["multiplier"]
    factor: Multiplier = Field(le=100)
    match: Match | None = Field(None, description="which lines it multiplies; none: every line, which only a "
                                                  "rule with an audience may say")
    days_of_week: list[Weekday] | None = Field(None, max_length=7, description=WEEKDAYS_DOC)
    audience: Audience | None = None
    limits: Limits | None = None

    @model_validator(mode="after")
    def _aimed(self) -> MultiplierRuleIn:
        if self.match is None and self.audience is None:
            raise ValueError("a multiplier needs a match, an audience, or both")
        return self


class BonusRuleIn(RuleWindow):
    rule_id: ClientId
    kind: Literal["bonus"]
    points: Points = Field(gt=0, le=1_000_000)
    trigger: Literal["first_purchase", "enrollment", "birthday_month", "referral", "min_spend"]
    min_spend: Amount | None = Field(None, validate_default=True)
    audience: Audience | None = None
    limits: Limits | None = None

    @field_validator("min_spend")
    @classmethod
    def _min_spend_given(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        if info.data.get("trigger") == "min_spend" and value is None:
            raise ValueError("min_spend is required for the min_spend trigger")
        return value

    @field_validator("limits")
    @classmethod
    def _limits_on_purchases(cls, value: Limits | None, info: ValidationInfo) -> Limits | None:
        if value is not None and info.data.get("trigger") in ("enrollment", "referral"):
            raise ValueError("limits apply to the bonuses a purchase gives (first_purchase, min_spend, "
                             "birthday_month), not to enrollment or referral bonuses")
        return value


RuleIn = Annotated[MultiplierRuleIn | BonusRuleIn, Field(discriminator="kind")]

# The two kinds of rule, as /docs offers them to try (``openapi_examples`` of the body).
RULE_EXAMPLES: dict[str, Any] = {
    "multiplier": {"summary": "Double points on groceries", "value": {
        "rule_id": "double-grocery", "kind": "multiplier", "factor": "2", "match": {"categories": ["grocery"]}}},
    "bonus": {"summary": "100 points on enrollment", "value": {
        "rule_id": "welcome-bonus", "kind": "bonus", "points": 100, "trigger": "enrollment"}},
    "win-back": {"summary": "Lapsed members earn triple, at most 600 extra points each, 250,000 in all", "value": {
        "rule_id": "win-back", "kind": "multiplier", "factor": "3", "audience": {"lifecycles": ["lapsed"]},
        "limits": {"per_member_points": 600, "budget_points": 250_000}}},
}


class RulePatch(Strict):
    """Fields to change; the rule is validated again as a whole."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"factor": "3"}]})

    factor: Multiplier | None = Field(None, le=100)
    match: Match | None = None
    days_of_week: list[Weekday] | None = Field(None, max_length=7)
    points: Points | None = Field(None, gt=0, le=1_000_000)
    trigger: Literal["first_purchase", "enrollment", "birthday_month", "referral", "min_spend"] | None = None
    min_spend: Amount | None = None
    valid_from: ScheduleTime | None = None
    valid_until: ScheduleTime | None = None
    audience: Audience | None = None
    limits: Limits | None = None


class Rule(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "rule_id": "double-grocery", "kind": "multiplier", "factor": "2", "match": {"categories": ["grocery"]},
        "days_of_week": None, "points": None, "trigger": None, "min_spend": None, "valid_from": None,
        "valid_until": None, "audience": None, "limits": None, "budget_used": 0, "exhausted": False,
        "created_at": "2026-11-20T09:05:00Z",
        "updated_at": "2026-11-20T09:05:00Z"}]})

    rule_id: str
    kind: Literal["multiplier", "bonus"]
    factor: Decimal | None = None
    match: dict[str, list[str]] | None = None
    days_of_week: list[int] | None = None
    points: int | None = None
    trigger: str | None = None
    min_spend: Decimal | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    audience: dict[str, Any] | None = None
    limits: dict[str, Any] | None = None
    budget_used: int = Field(0, description="points the rule has given, net of refunds (counted for rules with a "
                                            "budget)")
    exhausted: bool = Field(False, description="its budget is used up: it gives nothing until the budget is raised")
    created_at: datetime
    updated_at: datetime


# --- finding a member --------------------------------------------------------------------------------------

IdentifierKind = Literal["card", "phone", "email", "external"]


class Identifier(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"kind": "card", "value": "6012-0001"}]})

    kind: IdentifierKind
    value: str = Field(description="As it was given (trimmed); compared in its normalised form")


class MemberFound(Member):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "member_id": "C-1001", "name": "Ada Lovelace", "email": "ada@example.com", "phone": None,
        "birth_date": "1990-12-10", "referred_by": None, "status": "active", "enrolled_at": "2026-11-20T10:00:00Z",
        "tier": "bronze", "identifiers": [{"kind": "card", "value": "6012-0001"},
                                          {"kind": "email", "value": "ada@example.com"}]}]})

    identifiers: list[Identifier] = Field(description="Every handle the member is found by, the profile's "
                                                      "e-mail and phone included")


class MemberListed(Member):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "member_id": "C-1001", "name": "Ada Lovelace", "email": "ada@example.com", "phone": None,
        "birth_date": "1990-12-10", "referred_by": None, "status": "active", "enrolled_at": "2026-11-20T10:00:00Z",
        "tier": "bronze", "value_class": "B", "lifecycle": "active"}]})

    value_class: ValueClass | None = Field(description="As tiers last segmented the member (null before)")
    lifecycle: Lifecycle | None


# --- the checkout ------------------------------------------------------------------------------------------


class BalanceHeld(BaseModel):
    available: int
    pending: int
    held: int


class QuoteIn(Basket):
    """A purchase body without `purchase_id`: what it would earn, and what points could pay of it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "member_id": "C-1001", "store_id": "store-12", "channel": "pos", "occurred_at": "2026-11-20T10:15:00Z",
        "currency": "USD", "total": "20.00",
        "lines": [{"sku": "A-1", "category": "grocery", "quantity": 2, "unit_price": "10.00"}]}]})


class Redeemable(BaseModel):
    points: int = Field(description="The most points the member may pay for this order: available, within the "
                                    "program's `max_share` of the total, 0 below its `min_points`")
    value: Decimal = Field(description="What those points are worth in the program's currency")


class Quote(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "member_id": "C-1001", "points_earned": 40,
        "breakdown": [{"rule_id": "base", "points": 20}, {"rule_id": "double-grocery", "points": 20}],
        "balance": {"available": 100, "pending": 0, "held": 0}, "redeemable": {"points": 100, "value": "1.00"}}]})

    member_id: str
    points_earned: int = Field(description="What `POST /v1/purchases` with this body would earn now")
    breakdown: list[BreakdownItem] = Field(description=BREAKDOWN_DOC)
    balance: BalanceHeld
    redeemable: Redeemable


HoldStatus = Literal["held", "captured", "voided", "expired"]


class HoldIn(Strict):
    hold_id: ClientId
    member_id: ClientId
    points: Points = Field(gt=0)
    order_total: Amount | None = Field(None, description="The order the points pay for: points may pay at most "
                                                         "the program's `max_share` of it")
    currency: Currency | None = Field(None, description="The program's (else `422 currency-mismatch`)")
    store_id: ClientId | None = Field(None, description="Where the hold is taken; a store-bound key must give "
                                                        "one of its stores")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "hold_id": "store-12:h-000123", "member_id": "C-1001", "points": 50, "order_total": "20.00",
        "currency": "USD", "store_id": "store-12"}]})


class CaptureIn(Strict):
    points: Points | None = Field(None, gt=0, description="At most the points held (default: all); the rest "
                                                          "goes back to the member")
    purchase_id: ClientId | None = Field(None, description="The purchase the points pay (a purchase posted with "
                                                           "`points_paid` links itself)")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"purchase_id": "store-12:r-000124"}]})


HOLD_EXAMPLE: dict[str, Any] = {
    "hold_id": "store-12:h-000123", "member_id": "C-1001", "store_id": "store-12", "status": "held",
    "points": 50, "value": "0.50", "currency": "USD", "held_points": 50, "order_total": "20.00",
    "purchase_id": None, "created_at": "2026-11-20T10:14:00Z", "expires_at": "2026-11-20T10:29:00Z",
    "settled_at": None, "balance": {"available": 50, "pending": 0, "held": 50}}


class Hold(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [HOLD_EXAMPLE, {
        **HOLD_EXAMPLE, "status": "captured", "purchase_id": "store-12:r-000124", "settled_at":
        "2026-11-20T10:15:02Z", "balance": {"available": 86, "pending": 0, "held": 0}}]})

    hold_id: str
    member_id: str
    store_id: str | None
    status: HoldStatus = Field(description="held; then captured, voided or expired")
    points: int = Field(description="Held; once captured, the points taken")
    value: Decimal = Field(description="What `points` are worth in the program's currency")
    currency: str
    held_points: int = Field(description="The points the hold set aside")
    order_total: Decimal | None
    purchase_id: str | None = Field(description="The purchase the captured points paid")
    created_at: datetime
    expires_at: datetime = Field(description="Not captured or voided by then, the points go back by themselves")
    settled_at: datetime | None = Field(description="When it was captured, voided or expired")
    balance: BalanceHeld
