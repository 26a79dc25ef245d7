"""The tiers API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.types import Amount, ClientId, Multiplier

Basis = Literal["spend", "points"]
Downgrade = Literal["to_qualified", "one_level", "never"]
Days = Annotated[int, Field(ge=1, le=3650)]
Perk = Annotated[str, Field(min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TierIn(Strict):
    tier_id: ClientId
    name: str = Field(min_length=1, max_length=100)
    threshold: Amount = Field(description="Qualifying value (spend, or points) that reaches this tier")
    earn_multiplier: Multiplier = Field(description="Multiplies the points a purchase earns at this tier")
    perks: list[Perk] = Field(default_factory=list, max_length=50)


class TierProgramIn(Strict):
    basis: Basis = Field("spend", description="Spend net of refunds, or points earned net of reversals")
    window_days: Days = Field(365, description="The rolling window the qualifying value is summed over")
    retention_days: Days = Field(365, description="How long a tier reached is kept without qualifying again")
    downgrade: Downgrade = Field(
        "to_qualified", description="After retention: drop to the tier the window supports, one level, or never",
    )
    tiers: list[TierIn] = Field(
        min_length=1, max_length=50,
        description="Lowest first: ids unique, the first threshold 0, thresholds rising strictly",
    )

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "basis": "spend", "window_days": 365, "retention_days": 365, "downgrade": "to_qualified",
        "tiers": [
            {"tier_id": "bronze", "name": "Bronze", "threshold": "0", "earn_multiplier": "1", "perks": []},
            {"tier_id": "silver", "name": "Silver", "threshold": "500", "earn_multiplier": "1.5",
             "perks": ["free-shipping"]},
        ]}]})


class TierOut(BaseModel):
    tier_id: str
    name: str
    threshold: str = Field(examples=["500"])
    earn_multiplier: str = Field(examples=["1.5"])
    perks: list[str]


class TierProgram(BaseModel):
    basis: Basis
    window_days: int
    retention_days: int
    downgrade: Downgrade
    tiers: list[TierOut]
    updated_at: datetime | None = Field(description="None while the default program applies")
    updated_by: str | None = Field(description="The name of the API key that last changed it")


class NextTier(BaseModel):
    tier_id: str
    threshold: str
    remaining: str = Field(description="Qualifying value still missing to reach it")


class MemberTier(BaseModel):
    member_id: str
    tier_id: str
    name: str
    since: datetime
    retained_until: datetime = Field(description="Kept until then even without qualifying again")
    qualifying_value: str = Field(
        examples=["120.00", "1500"],
        description="Spend (a decimal amount) or points (a whole number) in the window, as of this answer",
    )
    window_start: datetime
    next_tier: NextTier | None
    earn_multiplier: str = Field(examples=["1.5"])


class HistoryEntry(BaseModel):
    from_tier: str | None
    to_tier: str
    reason: str = Field(examples=["enrolled", "upgrade", "downgrade", "tiers-changed"])
    at: datetime
