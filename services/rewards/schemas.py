"""The rewards API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from shared.http.types import Body, ClientId, Count, Points, ScheduleTime

RedemptionStatus = Literal["pending", "confirmed", "rejected", "cancelled"]
RedemptionSource = Literal["member", "goal"]
VoucherStatus = Literal["active", "used", "cancelled"]
Ineligibility = Literal["tier-too-low", "out-of-stock", "limit-reached", "reward-unavailable", "insufficient-points"]


class Strict(Body):
    """A request body: no unknown fields, no text a database cannot store."""

    model_config = ConfigDict(extra="forbid")


class RewardIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    points_cost: Points = Field(gt=0, le=1_000_000_000)
    stock: Count | None = Field(None, ge=0, le=1_000_000_000,
                                description="Units on offer in all; null: unlimited")
    per_member_limit: Count | None = Field(None, ge=1, le=1_000_000,
                                           description="Units one member may hold, pending or confirmed; null: none")
    min_tier: ClientId | None = Field(None, description="Lowest tier that may redeem; null: every member")
    valid_from: ScheduleTime | None = None
    valid_until: ScheduleTime | None = None
    active: StrictBool = Field(True, description="`true` or `false` (not `1`, `\"yes\"`...)")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "Coffee cup", "description": "Ceramic, 300 ml", "points_cost": 100, "stock": 50,
        "per_member_limit": 2, "min_tier": None, "active": True}]})

    @field_validator("valid_until")
    @classmethod
    def _window_in_order(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("valid_from")
        if value is not None and start is not None and value <= start:
            raise ValueError("valid_until must be after valid_from")
        return value


REWARD_EXAMPLE: dict[str, Any] = {
    "reward_id": "cup", "name": "Coffee cup", "description": "Ceramic, 300 ml", "points_cost": 100, "stock": 50,
    "stock_left": 49, "per_member_limit": 2, "min_tier": None, "valid_from": None, "valid_until": None,
    "active": True, "created_at": "2026-11-20T09:00:00Z", "updated_at": "2026-11-20T09:00:00Z"}


class Reward(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [REWARD_EXAMPLE]})

    reward_id: str
    name: str
    description: str | None
    points_cost: int
    stock: int | None
    stock_left: int | None = Field(description="Units not held by pending or confirmed redemptions; null: unlimited")
    per_member_limit: int | None
    min_tier: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    active: bool
    created_at: datetime
    updated_at: datetime


class CatalogItem(Reward):
    model_config = ConfigDict(json_schema_extra={"examples": [{**REWARD_EXAMPLE, "eligible": True, "reason": None}]})

    eligible: bool | None = Field(None, description="With `?member_id=`: whether the member may redeem one now")
    reason: Ineligibility | None = Field(None, description="With `?member_id=`: why not; null when eligible")


class RedemptionIn(Strict):
    redemption_id: ClientId
    member_id: ClientId
    reward_id: ClientId
    quantity: Count = Field(1, ge=1, le=100)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"redemption_id": "web:r-4711", "member_id": "C-1001", "reward_id": "cup", "quantity": 1}]})


class Redemption(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "redemption_id": "web:r-4711", "member_id": "C-1001", "reward_id": "cup", "quantity": 1, "points_cost": 100,
        "status": "confirmed", "reason": None, "voucher_code": "7KQ2M-X9TRB-4HWNC", "source": "member",
        "created_at": "2026-11-21T10:00:00Z", "updated_at": "2026-11-21T10:00:01Z"}]})

    redemption_id: str
    member_id: str
    reward_id: str
    quantity: int
    points_cost: int = Field(description="The reward's cost times the quantity; 0 for a goal's reward")
    status: RedemptionStatus
    reason: str | None = Field(None, description="Why it was rejected: `insufficient-points`, `member-not-found`, "
                                                 "`member-inactive`; a goal's reward: `out-of-stock`, "
                                                 "`reward-inactive`, `reward-unavailable`")
    voucher_code: str | None = Field(None, description="Once confirmed: `XXXXX-XXXXX-XXXXX`. Shown only to "
                                                       "keys of the whole program with `vouchers:use` or "
                                                       "`admin`, and to the key that asked for the redemption; "
                                                       "null to any other key (a store-bound key sees only "
                                                       "the codes of the redemptions it asked for)")
    source: RedemptionSource = Field("member", description="`member`: redeemed for points; `goal`: a goal's "
                                                          "reward, given for free (`redemption_id` is the "
                                                          "`goal_id` of its `goal.reached`, `points_cost` 0)")
    created_at: datetime
    updated_at: datetime
    created_by: str | None = Field(None, exclude=True)  # the key that asked for it: never answered, see shown_to


class Voucher(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "code": "7KQ2M-X9TRB-4HWNC", "redemption_id": "web:r-4711", "reward_id": "cup", "member_id": "C-1001",
        "status": "used", "used_at": "2026-11-21T12:00:00Z", "store_id": "store-12",
        "created_at": "2026-11-21T10:00:01Z"}]})

    code: str
    redemption_id: str
    reward_id: str
    member_id: str
    status: VoucherStatus
    used_at: datetime | None = None
    store_id: str | None = None
    created_at: datetime


class VoucherUse(Strict):
    store_id: ClientId | None = Field(None, description="Where it was used")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"store_id": "store-12"}]})
