"""The tiers API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.http.types import Amount, Body, ClientId, Count, Multiplier

Basis = Literal["spend", "points"]
Downgrade = Literal["to_qualified", "one_level", "never"]
Days = Annotated[Count, Field(ge=1, le=3650)]
Perk = Annotated[str, Field(min_length=1, max_length=200)]


class Strict(Body):
    """A request body: no unknown fields, no text a database cannot store."""

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
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "basis": "spend", "window_days": 365, "retention_days": 365, "downgrade": "to_qualified",
        "tiers": [
            {"tier_id": "bronze", "name": "Bronze", "threshold": "0", "earn_multiplier": "1", "perks": []},
            {"tier_id": "silver", "name": "Silver", "threshold": "500", "earn_multiplier": "1.5",
             "perks": ["free-shipping"]}],
        "updated_at": "2026-11-20T09:00:00Z", "updated_by": "bootstrap-admin"}]})

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
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "member_id": "C-1001", "tier_id": "bronze", "name": "Bronze", "since": "2026-11-20T10:00:00Z",
        "retained_until": "2027-11-20T10:00:00Z", "qualifying_value": "20.00", "window_start": "2025-11-21T09:00:00Z",
        "next_tier": {"tier_id": "silver", "threshold": "500", "remaining": "480.00"}, "earn_multiplier": "1"}]})

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
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"from_tier": None, "to_tier": "bronze", "reason": "enrolled", "at": "2026-11-20T10:00:00Z"}]})

    from_tier: str | None
    to_tier: str
    reason: str = Field(examples=["enrolled", "upgrade", "downgrade", "tiers-changed"])
    at: datetime


# --- segments and analytics -------------------------------------------------------------------------

ValueClass = Literal["A", "B", "C", "D"]
Lifecycle = Literal["new", "active", "at_risk", "lapsed", "won_back"]
Score = Annotated[int, Field(ge=1, le=5)]


class Rfm(BaseModel):
    recency: Score = Field(description="5: bought most recently; quintiles over the scored members")
    frequency: Score = Field(description="5: most purchases in the segment window")
    monetary: Score = Field(description="5: most revenue in the segment window")


class MemberSegment(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "member_id": "C-1001", "rfm": {"recency": 5, "frequency": 3, "monetary": 4}, "value_class": "B",
        "lifecycle": "active", "clv_estimate": "1250.00", "computed_at": "2026-11-21T09:45:00Z"}]})

    member_id: str
    rfm: Rfm
    value_class: ValueClass = Field(description="A: the members making the first 50% of the window's revenue, "
                                                "B the next 30%, C the next 15%, D the rest and non-buyers")
    lifecycle: Lifecycle
    clv_estimate: str = Field(examples=["1250.00"], description="Average order value x purchases per year x "
                                                                "expected remaining years (docs/segments.md)")
    computed_at: datetime | None = Field(
        description="When the segmentation run that scored the member ran; null before the member's first run "
                    "(RFM 1, class D, lifecycle and CLV computed for this answer)")


class Pareto(BaseModel):
    top_20pct_revenue_share: float | None = Field(
        examples=[0.62], description="Share of the window's revenue made by the top 20% of scored members; "
                                     "null before the first run or without revenue")


class SegmentsInfo(BaseModel):
    computed_at: datetime = Field(description="When the last segmentation run ran")
    segmented: int = Field(description="Members with a stored segment (the rest joined since the last run)")
    scored: int = Field(description="Members in the scored base: not suspended or closed, with a purchase")
    window_days: int
    recency_threshold_days: int
    new_member_days: int
    revenue: str = Field(description="Revenue of the scored base in the window, net of refunds")
    retention_rate: float | None = Field(
        description="Share of the previous window's buyers who bought in this window; null without any")
    expected_lifetime_years: float = Field(description="r / (1 - r), the CLV model's remaining lifetime")


class AnalyticsSummary(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "members": 2, "by_tier": {"bronze": 2}, "by_status": {"active": 2},
        "by_value_class": {"A": 1, "D": 1}, "by_lifecycle": {"active": 1, "new": 1},
        "pareto": {"top_20pct_revenue_share": 1.0}, "points_liability": 370,
        "segments": {"computed_at": "2026-11-21T09:45:00Z", "segmented": 2, "scored": 1, "window_days": 365,
                     "recency_threshold_days": 90, "new_member_days": 30, "revenue": "20.00",
                     "retention_rate": None, "expected_lifetime_years": 1.5}}]})

    members: int
    by_tier: dict[str, int]
    by_status: dict[str, int] = Field(description="unknown: members known only from their purchases")
    by_value_class: dict[str, int] = Field(description="Members with a stored segment, by value class")
    by_lifecycle: dict[str, int] = Field(description="Members with a stored segment, by lifecycle")
    pareto: Pareto
    points_liability: int = Field(description="Outstanding points (available + pending + held, never below zero "
                                              "per member) as the last points.* event of each member told it")
    segments: SegmentsInfo | None = Field(description="The last segmentation run; null before the first")


class SegmentRunOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"computed_at": "2026-11-21T09:45:00Z", "members": 2, "scored": 1, "changed": 2}]})

    computed_at: datetime
    members: int
    scored: int
    changed: int = Field(description="Members whose value class or lifecycle changed (one event each)")
