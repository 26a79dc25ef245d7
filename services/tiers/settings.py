from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.tiers.domain import segments
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TIERS_", extra="ignore", populate_by_name=True)

    service_name: str = "tiers"
    database_url: str = "sqlite+aiosqlite:///./.data/tiers.db"

    segment_window_days: int = Field(
        365, ge=1, le=3650, description="The window that value classes, frequency, monetary and CLV look at")
    recency_threshold_days: int = Field(
        90, ge=1, le=3650, description="A member who bought within it is active, past it at risk, past twice it lapsed")
    new_member_days: int = Field(30, ge=0, le=3650, description="How long after enrolment a member is new")

    def segment_params(self) -> segments.Params:
        return segments.Params(window_days=self.segment_window_days, recency_days=self.recency_threshold_days,
                               new_days=self.new_member_days)
