from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

DEFAULT_RETRY_SECONDS = 30.0
DEFAULT_RETRY_MAX_SECONDS = 300.0


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REWARDS_", extra="ignore", populate_by_name=True)

    service_name: str = "rewards"
    database_url: str = "sqlite+aiosqlite:///./.data/rewards.db"
    redemption_retry_seconds: float = Field(
        DEFAULT_RETRY_SECONDS, gt=0, le=86_400,
        description="A pending redemption with no answer from points this long after it was asked is asked "
                    "again (same redemption_id, new event id).",
    )
    redemption_retry_max_seconds: float = Field(
        DEFAULT_RETRY_MAX_SECONDS, gt=0, le=86_400,
        description="The wait before each further ask doubles up to this; equal to redemption_retry_seconds "
                    "for a fixed interval.",
    )

    @model_validator(mode="after")
    def _retry_max_not_below_retry(self) -> Settings:
        if self.redemption_retry_max_seconds < self.redemption_retry_seconds:
            raise ValueError("REWARDS_REDEMPTION_RETRY_MAX_SECONDS is below REWARDS_REDEMPTION_RETRY_SECONDS")
        return self
