from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TIERS_", extra="ignore", populate_by_name=True)

    service_name: str = "tiers"
    database_url: str = "sqlite+aiosqlite:///./.data/tiers.db"
