"""Settings pieces common to the three services.

Each service subclasses ``ServiceSettings`` with its own env prefix (``POINTS_``...), so its database URL is
``POINTS_DATABASE_URL``; the settings every service shares (Kafka, keys) keep their contract names.
Nothing else in the code reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_KEYS = {"changeme", "admin", "secret", "dev-admin-key"}


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = "service"
    database_url: str = "sqlite+aiosqlite:///./.data/service.db"
    # A fixed pool: connections stay open under load instead of being opened and closed per burst (each a
    # TLS handshake); a request that finds none free waits for one (then 503 after 30 s).
    database_pool_size: int = Field(20, ge=2, le=200)

    environment: str = Field("development", validation_alias="LOYALTY_ENV")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_topic_prefix: str = Field(
        "", validation_alias="KAFKA_TOPIC_PREFIX",
        description="Prepended to every topic name; lets test runs and tenants share one broker.",
    )
    kafka_partitions: int = Field(12, ge=1, validation_alias="KAFKA_PARTITIONS")
    kafka_enabled: bool = Field(
        True, validation_alias="LOYALTY_KAFKA_ENABLED",
        description="Off only for tests of one service's HTTP API: no relay, no consumers.",
    )
    consumer_max_attempts: int = Field(5, ge=1, validation_alias="LOYALTY_CONSUMER_MAX_ATTEMPTS")
    outbox_poll_seconds: float = Field(0.2, gt=0, validation_alias="LOYALTY_OUTBOX_POLL_SECONDS")

    max_past_days: int = Field(3650, ge=1, validation_alias="LOYALTY_MAX_PAST_DAYS")
    max_future_hours: int = Field(24, ge=0, validation_alias="LOYALTY_MAX_FUTURE_HOURS")
    metrics_public: bool = Field(False, validation_alias="LOYALTY_METRICS_PUBLIC")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, validation_alias="LOYALTY_MAX_BODY_BYTES")
    log_format: str = Field(
        "json", validation_alias="LOYALTY_LOG_FORMAT",
        description="json: one JSON object per line on stderr; none: leave logging as the host set it up.",
    )
    log_level: str = Field("INFO", validation_alias="LOYALTY_LOG_LEVEL")

    bootstrap_admin_key: SecretStr | None = Field(None, validation_alias="LOYALTY_BOOTSTRAP_ADMIN_KEY")
    api_keys_file: Path | None = Field(None, validation_alias="LOYALTY_API_KEYS_FILE")

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        key = self.bootstrap_admin_key.get_secret_value() if self.bootstrap_admin_key else None
        if self.environment != "development" and key is not None and (key in PLACEHOLDER_KEYS or len(key) < 16):
            raise ValueError("LOYALTY_BOOTSTRAP_ADMIN_KEY is a placeholder or shorter than 16 characters")
        return self
