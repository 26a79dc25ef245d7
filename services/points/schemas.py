"""The points API's request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.types import Amount, ClientId, Currency, Timestamp

MemberStatus = Literal["active", "suspended", "closed"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberIn(Strict):
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(None, max_length=32, pattern=r"^\+?[0-9 ()./-]{3,32}$")
    birth_date: date | None = None
    referred_by: ClientId | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"name": "Ada Lovelace", "email": "ada@example.com", "birth_date": "1990-12-10"}]})


class Member(BaseModel):
    member_id: str
    name: str | None
    email: str | None
    phone: str | None
    birth_date: date | None
    referred_by: str | None
    status: MemberStatus
    enrolled_at: datetime
    tier: str | None


class Expiring(BaseModel):
    points: int
    expires_at: datetime


class Balance(BaseModel):
    member_id: str
    available: int
    pending: int
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
    quantity: int = Field(gt=0, le=100_000)
    unit_price: Amount


class PurchaseIn(Strict):
    purchase_id: ClientId
    member_id: ClientId
    store_id: ClientId | None = None
    channel: str | None = Field(None, max_length=32)
    occurred_at: Timestamp
    currency: Currency
    total: Amount
    lines: list[PurchaseLine] | None = Field(None, max_length=500)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "purchase_id": "store-12:r-000123", "member_id": "C-1001", "store_id": "store-12", "channel": "pos",
        "occurred_at": "2026-11-20T10:15:00Z", "currency": "USD", "total": "20.00",
        "lines": [{"sku": "A-1", "category": "grocery", "quantity": 2, "unit_price": "10.00"}]}]})

    @model_validator(mode="after")
    def _lines_add_up(self) -> PurchaseIn:
        if self.lines:
            lines_total = sum((line.unit_price * line.quantity for line in self.lines), Decimal(0))
            if lines_total != self.total:
                raise ValueError(f"the lines add up to {lines_total}, not to the total {self.total}")
        return self


class BreakdownItem(BaseModel):
    rule_id: str
    points: int


class PurchaseResult(BaseModel):
    purchase_id: str
    member_id: str
    points_earned: int
    status: Literal["credited", "pending"]
    breakdown: list[BreakdownItem]
    balance: BalanceShort


class ProgramIn(Strict):
    currency: Currency
    points_per_unit: Decimal = Field(ge=0, max_digits=12, decimal_places=4, allow_inf_nan=False)
    expiry_days: int = Field(ge=1, le=36_500)
    pending_days: int = Field(ge=0, le=365)
    excluded_categories: list[str] = Field(default_factory=list, max_length=500)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "currency": "USD", "points_per_unit": "1", "expiry_days": 365, "pending_days": 0,
        "excluded_categories": ["tobacco"]}]})


class Program(BaseModel):
    currency: str
    points_per_unit: Decimal
    expiry_days: int
    pending_days: int
    excluded_categories: list[str]
    updated_at: datetime
