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

REFERRAL_CODE_IN_DOC = (
    "Another member's `referral_code` (case, spaces and hyphens do not matter), taken at enrolment only: the "
    "new member's `referred_by` becomes the code's owner. `422 referral-invalid` when no member has the code, "
    "it is the member's own, its owner is not active, its owner shares the new member's e-mail or phone, or "
    "`referred_by` names someone else; nothing is stored then. Sent again to the member it enrolled (a retry) "
    "it changes nothing; to a member enrolled without it, or referred by someone else, it is refused.")
REFERRAL_CODE_DOC = ("The member's own code to hand to friends: 12 characters of `ABCDEFGHJKMNPQRSTVWXYZ23456789` "
                     "(no 0/O, 1/I/L, U) drawn at random at enrolment, about 59 bits, unique; it never changes. "
                     "Shown to store-bound keys too (it is not personal data)")


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
    referred_by: ClientId | None = Field(None, description=(
        "The referrer's member id, taken as given (for imports and trusted back offices; it is not checked). "
        "A member-facing sign-up sends `referral_code` instead, which sets it."))
    referral_code: str | None = Field(None, min_length=1, max_length=64, description=REFERRAL_CODE_IN_DOC,
                                      examples=["K7QX2M9PRT4W"])

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"name": "Ada Lovelace", "email": "ada@example.com", "birth_date": "1990-12-10"},
                     {"name": "Grace Hopper", "email": "grace@example.com", "referral_code": "K7QX2M9PRT4W"}]})


class Member(BaseModel):
    """A member. `email` and `phone` are null in every answer to a store-bound key (one lent to a till or a
    shop, bound to its stores), whatever is stored; keys of the whole program see them."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "member_id": "C-1001", "name": "Ada Lovelace", "email": "ada@example.com", "phone": None,
        "birth_date": "1990-12-10", "referred_by": None, "status": "active", "enrolled_at": "2026-11-20T10:00:00Z",
        "tier": "bronze", "referral_code": "K7QX2M9PRT4W"}]})

    member_id: str
    name: str | None
    email: str | None = Field(description="Null for a store-bound key")
    phone: str | None = Field(description="Null for a store-bound key")
    birth_date: date | None
    referred_by: str | None = Field(description="The member id of who referred this member (by `referral_code` "
                                                "at enrolment, or as given)")
    status: MemberStatus
    enrolled_at: datetime
    tier: str | None
    referral_code: str = Field(description=REFERRAL_CODE_DOC)


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


EXPIRY_REMINDER_DOC = (
    "Days before a lot of points expires that points sends `points.expiring` about it, once per lot, for the "
    "reminder that brings the member back (0: none). Fewer than `expiry_days`")
REFERRAL_DOC = (
    "Bring a friend: a member enrolled with another's `referral_code` (or `referred_by`) is the referee, the "
    "code's owner the referrer. The referee's first purchase whose total, less what points paid of it, is at "
    "least `min_spend` pays both sides once, as `bonus` ledger entries (rule id `referral`) naming that "
    "purchase, pending and expiring with the purchase's own points; a full refund of that purchase takes both "
    "back (a debt if they were spent), a partial one neither. A referee's purchases below `min_spend` leave "
    "the referral open. At most `max_per_referrer_per_year` referrals pay per referrer in a calendar year of "
    "the program's `time_zone` (the purchase's `occurred_at`); past it the referral closes unpaid for both. "
    "Null: no referral setting (bonus rules with the `referral` trigger still pay). See docs/referrals.md")


class ReferralSettings(Strict):
    """What a referral pays, and to whom (`REFERRAL_DOC`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"referrer_points": 500, "referee_points": 250, "min_spend": "10.00", "max_per_referrer_per_year": 10}]})

    referrer_points: Points = Field(ge=0, le=1_000_000, description="What the code's owner gets")
    referee_points: Points = Field(ge=0, le=1_000_000, description="What the new member gets, beside what the "
                                                                   "purchase earns")
    min_spend: Amount = Field(Decimal(0), description="The least a purchase's total, less what points paid, must "
                                                      "be for it to qualify (0: any first purchase)")
    max_per_referrer_per_year: Count | None = Field(None, ge=1, le=1_000_000, description=(
        "The most referrals one referrer is paid for in a calendar year of the program's `time_zone`; null: no "
        "cap. A referral past it closes unpaid for both sides"))


class ReferralSettingsOut(BaseModel):
    referrer_points: int
    referee_points: int
    min_spend: Decimal
    max_per_referrer_per_year: int | None


class ProgramIn(Strict):
    currency: Currency
    points_per_unit: Amount = Field(lt=10**8, description="Points per unit of the currency (below 10**8: what "
                                                          "the column holds, 8 digits and 4 decimals)")
    expiry_days: Count = Field(ge=1, le=36_500)
    pending_days: Count = Field(ge=0, le=365)
    expiry_reminder_days: Count = Field(0, ge=0, le=365, description=EXPIRY_REMINDER_DOC)
    excluded_categories: list[str] = Field(default_factory=list, max_length=500)
    time_zone: TimeZone = Field("UTC", description=TIME_ZONE_DOC)
    max_points_per_purchase: Points = Field(1_000_000_000, ge=1, le=10**12, description=CAP_DOC)
    redemption: RedemptionSettings = Field(default_factory=RedemptionSettings)
    referral: ReferralSettings | None = Field(None, description=REFERRAL_DOC)

    @model_validator(mode="after")
    def _reminder_before_expiry(self) -> ProgramIn:
        if self.expiry_reminder_days >= self.expiry_days:
            raise ValueError("expiry_reminder_days must be fewer than expiry_days (a reminder as points are "
                             "earned reminds of nothing)")
        return self

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "currency": "USD", "points_per_unit": "1", "expiry_days": 365, "pending_days": 0, "expiry_reminder_days": 30,
        "excluded_categories": ["tobacco"], "time_zone": "America/New_York",
        "max_points_per_purchase": 1_000_000_000,
        "redemption": {"point_value": "0.01", "min_points": 0, "max_share": "1", "hold_minutes": 15,
                       "earn_on_points_paid": False},
        "referral": {"referrer_points": 500, "referee_points": 250, "min_spend": "10.00",
                     "max_per_referrer_per_year": 10}}]})


class Program(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "currency": "USD", "points_per_unit": "1", "expiry_days": 365, "pending_days": 0,
        "excluded_categories": ["tobacco"], "time_zone": "America/New_York",
        "max_points_per_purchase": 1_000_000_000,
        "redemption": {"point_value": "0.01", "min_points": 0, "max_share": "1", "hold_minutes": 15,
                       "earn_on_points_paid": False},
        "referral": {"referrer_points": 500, "referee_points": 250, "min_spend": "10.00",
                     "max_per_referrer_per_year": 10},
        "expiry_reminder_days": 30, "updated_at": "2026-11-20T09:00:00Z"}]})

    currency: str
    points_per_unit: Decimal
    expiry_days: int
    pending_days: int
    expiry_reminder_days: int = Field(description=EXPIRY_REMINDER_DOC)
    excluded_categories: list[str]
    time_zone: str = Field(description=TIME_ZONE_DOC)
    max_points_per_purchase: int = Field(description=CAP_DOC)
    redemption: RedemptionSettingsOut
    referral: ReferralSettingsOut | None = Field(None, description=REFERRAL_DOC)
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


HOLDOUT_DOC = ("the share (0-50 %) of the audience kept as a control group that never gets the rule, chosen by a "
               "stable hash of rule id and member id; `GET /v1/earning-rules/{rule_id}/report` compares them")
HoldoutPct = Annotated[Count, Field(ge=0, le=50, description=HOLDOUT_DOC)]


class MultiplierRuleIn(RuleWindow):
    rule_id: ClientId
    kind: Literal["multiplier"]
    factor: Multiplier = Field(le=100)
    match: Match | None = Field(None, description="which lines it multiplies; none: every line, which only a "
                                                  "rule with an audience may say")
    days_of_week: list[Weekday] | None = Field(None, max_length=7, description=WEEKDAYS_DOC)
    audience: Audience | None = None
    limits: Limits | None = None
    holdout_pct: HoldoutPct | None = None

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
    holdout_pct: HoldoutPct | None = None

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


GoalMetric = Literal["spend", "purchases"]
GoalPeriod = Literal["month", "quarter", "year", "rolling"]


class GoalReward(Strict):
    """What reaching the goal gives: points, points worth a share of the period's spend, or a catalog reward
    that rewards issues for free as a voucher. Exactly one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"points": 500}, {"rebate_pct": "2.5"}, {"reward_id": "free-coffee"}]})

    points: Points | None = Field(None, gt=0, le=1_000_000_000)
    rebate_pct: Annotated[Decimal, PLAIN_DECIMAL, Field(gt=0, le=100, max_digits=6, decimal_places=3,
                                                        allow_inf_nan=False)] | None = Field(
        None, description="points worth this percentage of the period's counted spend, net of refunds, at the "
                          "program's `redemption.point_value` (rounded down)")
    reward_id: ClientId | None = Field(None, description="a rewards catalog id; rewards issues one unit from stock")

    @model_validator(mode="after")
    def _exactly_one(self) -> GoalReward:
        if sum(value is not None for value in (self.points, self.rebate_pct, self.reward_id)) != 1:
            raise ValueError("a reward is exactly one of points, rebate_pct, reward_id")
        return self


class GoalRuleIn(RuleWindow):
    """A target reached over a period: settled once per member and period after the return window."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"rule_id": "coffee-card", "kind": "goal", "metric": "purchases", "target": "10", "period": "rolling",
         "match": {"categories": ["coffee"]}, "reward": {"reward_id": "free-coffee"}},
        {"rule_id": "dealer-rebate", "kind": "goal", "metric": "spend", "target": "25000", "period": "quarter",
         "reward": {"rebate_pct": "2.5"}}]})

    rule_id: ClientId
    kind: Literal["goal"]
    metric: GoalMetric = Field(description="`spend`: the counted lines' amount, net of refunds; `purchases`: "
                                           "purchases with a counted line and not refunded in full")
    target: Amount = Field(description="what the metric must reach in one period (a whole number for purchases)")
    period: GoalPeriod = Field(description="calendar periods in the program's `time_zone`; `rolling`: counted "
                                           "since the last reward, again and again (a stamp card)")
    match: Match | None = Field(None, description="which lines count; none: every line")
    reward: GoalReward
    audience: Audience | None = None
    holdout_pct: HoldoutPct | None = None

    @model_validator(mode="after")
    def _whole_target(self) -> GoalRuleIn:
        if self.target <= 0:
            raise ValueError("target must be more than 0")
        if self.metric == "purchases" and self.target != self.target.to_integral_value():
            raise ValueError("a purchases target is a whole number")
        if self.metric == "purchases" and self.period == "rolling" and self.reward.rebate_pct is not None:
            raise ValueError("a rolling purchases goal has no spend to give a rebate of: reward points or a "
                             "reward_id")
        return self


RuleIn = Annotated[MultiplierRuleIn | BonusRuleIn | GoalRuleIn, Field(discriminator="kind")]

# The two kinds of rule, as /docs offers them to try (``openapi_examples`` of the body).
RULE_EXAMPLES: dict[str, Any] = {
    "multiplier": {"summary": "Double points on groceries", "value": {
        "rule_id": "double-grocery", "kind": "multiplier", "factor": "2", "match": {"categories": ["grocery"]}}},
    "bonus": {"summary": "100 points on enrollment", "value": {
        "rule_id": "welcome-bonus", "kind": "bonus", "points": 100, "trigger": "enrollment"}},
    "win-back": {"summary": "Lapsed members earn triple, at most 600 extra points each, 250,000 in all", "value": {
        "rule_id": "win-back", "kind": "multiplier", "factor": "3", "audience": {"lifecycles": ["lapsed"]},
        "limits": {"per_member_points": 600, "budget_points": 250_000}}},
    "stamp-card": {"summary": "Every 10th coffee free (a voucher from rewards)", "value": {
        "rule_id": "coffee-card", "kind": "goal", "metric": "purchases", "target": "10", "period": "rolling",
        "match": {"categories": ["coffee"]}, "reward": {"reward_id": "free-coffee"}}},
    "quarterly-rebate": {"summary": "2.5% back in points on a quarter's spend of 25,000 or more", "value": {
        "rule_id": "dealer-rebate", "kind": "goal", "metric": "spend", "target": "25000", "period": "quarter",
        "reward": {"rebate_pct": "2.5"}}},
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
    holdout_pct: HoldoutPct | None = None
    metric: GoalMetric | None = None
    target: Amount | None = None
    period: GoalPeriod | None = None
    reward: GoalReward | None = None


class Rule(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "rule_id": "double-grocery", "kind": "multiplier", "factor": "2", "match": {"categories": ["grocery"]},
        "days_of_week": None, "points": None, "trigger": None, "min_spend": None, "valid_from": None,
        "valid_until": None, "audience": None, "limits": None, "budget_used": 0, "exhausted": False,
        "created_at": "2026-11-20T09:05:00Z",
        "updated_at": "2026-11-20T09:05:00Z"}]})

    rule_id: str
    kind: Literal["multiplier", "bonus", "goal"]
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
    holdout_pct: int | None = None
    metric: str | None = None
    target: Decimal | None = None
    period: str | None = None
    reward: dict[str, Any] | None = None
    budget_used: int = Field(0, description="points the rule has given, net of refunds (counted for rules with a "
                                            "budget)")
    exhausted: bool = Field(False, description="its budget is used up: it gives nothing until the budget is raised")
    created_at: datetime
    updated_at: datetime


class HoldoutGroup(BaseModel):
    members: int = Field(description="members of the group: in the rule's audience now, or taken in by it "
                                     "at a purchase in the window")
    purchases: int = Field(description="their purchases in the window")
    spend: Decimal = Field(description="what those purchases came to, net of refunds")
    points: int = Field(description="the points those purchases earned, net of refunds' reversals")
    spend_per_member: Decimal | None


class HoldoutReport(BaseModel):
    """Treated and control members of a rule over its window. The uplift is the difference of mean spend per
    member; its interval is the difference plus or minus 1.96 Welch standard errors (docs/campaigns.md)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "rule_id": "win-back", "holdout_pct": 10, "from": "2027-01-04T05:00:00Z", "to": "2027-02-03T05:00:00Z",
        "treated": {"members": 1800, "purchases": 950, "spend": "23750.00", "points": 71250,
                    "spend_per_member": "13.19"},
        "control": {"members": 200, "purchases": 70, "spend": "1750.00", "points": 1750,
                    "spend_per_member": "8.75"},
        "spend_per_member_uplift": "4.44", "interval_95": ["2.10", "6.78"], "significant": True}]})

    rule_id: str
    holdout_pct: int
    from_: datetime = Field(alias="from", description="the window's start: `valid_from`, or when the rule was "
                                                      "created")
    to: datetime = Field(description="the window's end: `valid_until`, or now while the rule runs")
    treated: HoldoutGroup
    control: HoldoutGroup
    spend_per_member_uplift: Decimal | None = Field(description="treated minus control; none without members in "
                                                                "both groups")
    interval_95: list[Decimal] | None = Field(description="[low, high]; none while a group has fewer than two "
                                                          "members")
    significant: bool = Field(description="the interval leaves out 0: the rule changed what members spend")


class GoalProgress(BaseModel):
    rule_id: str
    metric: GoalMetric
    period: GoalPeriod
    period_key: str = Field(description="the period counted now: `2027-Q1`, or `rolling-3` for the third card")
    progress: Decimal = Field(description="what counts so far in this period (net of refunds; purchases still in "
                                          "their return window included); on a card, since the last one filled")
    target: Decimal
    period_end: datetime | None = Field(description="when the period closes (it is settled `pending_days` "
                                                    "later); none for a rolling goal")
    reward: dict[str, Any]
    settled: list[str] = Field(description="the periods (or cards) already settled for the member, oldest first")


class GoalRun(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reached": 12}]})

    reached: int = Field(description="settlements made by this run (periods reached, cards filled)")


class MemberGoals(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"member_id": "C-1001", "goals": [{
        "rule_id": "coffee-card", "metric": "purchases", "period": "rolling", "period_key": "rolling-2",
        "progress": "7", "target": "10", "period_end": None, "reward": {"reward_id": "free-coffee"},
        "settled": ["rolling-1"]}]}]})

    member_id: str
    goals: list[GoalProgress]


# --- simulating rule changes -------------------------------------------------------------------------

SIMULATION_MAX_DAYS = 366
SIMULATION_EXAMPLE: dict[str, Any] = {
    "rules": [{"rule_id": "double-grocery", "kind": "multiplier", "factor": "3", "match": {"categories": ["grocery"]}},
              {"rule_id": "big-basket", "kind": "bonus", "points": 50, "trigger": "min_spend", "min_spend": "50.00"}],
    "remove": ["win-back"], "from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}


class SimulationIn(Strict):
    """Rule changes to try on the purchases of a range: nothing is stored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True,
                              json_schema_extra={"examples": [SIMULATION_EXAMPLE]})

    rules: list[RuleIn] = Field(default_factory=list, max_length=1000, description=(
        "Rule bodies, as `POST /v1/earning-rules` takes them: one with a stored rule's id replaces it (same "
        "kind), another is added. Goal rules are accepted and listed in `skipped`: goals are settled per period, "
        "not per purchase, and are not replayed"))
    remove: list[ClientId] = Field(default_factory=list, max_length=1000, description=(
        "Ids of stored rules to take out"))
    from_: Timestamp = Field(alias="from", description="Purchases whose `occurred_at` is at or after this")
    to: Timestamp = Field(description=f"... and before this; at most {SIMULATION_MAX_DAYS} days after `from`")

    @model_validator(mode="after")
    def _range_and_ids(self) -> SimulationIn:
        if self.to <= self.from_:
            raise ValueError("to must be after from")
        if (self.to - self.from_).total_seconds() > SIMULATION_MAX_DAYS * 86_400:
            raise ValueError(f"the range may be at most {SIMULATION_MAX_DAYS} days")
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.rule_id in seen:
                raise ValueError(f"rules[{index}]: the rule id {rule.rule_id!r} appears twice")
            seen.add(rule.rule_id)
        both = sorted(seen & set(self.remove))
        if both:
            raise ValueError(f"{both[0]!r} is both in rules and in remove")
        return self


class SimulatedPoints(BaseModel):
    points: int = Field(description="What the purchases of the range earn under these rules")


class SimulatedRule(BaseModel):
    rule_id: str = Field(description="`base`, `tier` or a rule id")
    points: int = Field(description="What it gives under the proposal")
    current_points: int = Field(description="What it gives under today's rules")
    change: Literal["added", "replaced", "removed"] | None = Field(
        None, description="What the proposal does to it; null: nothing")


class Simulation(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "purchases": 1840, "members": 612, "members_changed": 398, "current": {"points": 51_230},
        "proposed": {"points": 60_410},
        "by_rule": [{"rule_id": "base", "points": 41_200, "current_points": 41_200, "change": None},
                    {"rule_id": "tier", "points": 3_010, "current_points": 2_730, "change": None},
                    {"rule_id": "big-basket", "points": 4_300, "current_points": 0, "change": "added"},
                    {"rule_id": "double-grocery", "points": 11_900, "current_points": 5_700, "change": "replaced"},
                    {"rule_id": "win-back", "points": 0, "current_points": 1_600, "change": "removed"}],
        "liability_value_delta": "91.80", "currency": "USD", "skipped": []}]})

    purchases: int = Field(description="Purchases with `occurred_at` in [from, to)")
    members: int = Field(description="Members with a purchase in the range")
    members_changed: int = Field(description="Of those, the members whose points differ under the proposal")
    current: SimulatedPoints
    proposed: SimulatedPoints
    by_rule: list[SimulatedRule] = Field(description=(
        "`base`, `tier`, then every multiplier and bonus rule of either set by id; each column sums to its "
        "total"))
    liability_value_delta: Decimal = Field(description=(
        "(proposed - current points) x the program's `redemption.point_value`, in `currency`, rounded to its "
        "minor unit"))
    currency: str
    skipped: list[str] = Field(description="Goal rules of the body, not replayed (settled per period)")


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
        "tier": "bronze", "referral_code": "K7QX2M9PRT4W", "identifiers": [{"kind": "card", "value": "6012-0001"},
                                          {"kind": "email", "value": "ada@example.com"}]}]})

    identifiers: list[Identifier] = Field(description="Every handle the member is found by, the profile's "
                                                      "e-mail and phone included")


class MemberListed(Member):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "member_id": "C-1001", "name": "Ada Lovelace", "email": "ada@example.com", "phone": None,
        "birth_date": "1990-12-10", "referred_by": None, "status": "active", "enrolled_at": "2026-11-20T10:00:00Z",
        "tier": "bronze", "referral_code": "K7QX2M9PRT4W", "value_class": "B", "lifecycle": "active"}]})

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
