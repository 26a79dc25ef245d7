"""Settings pieces common to the three services.

Each service subclasses ``ServiceSettings`` with its own env prefix (``POINTS_``...), so its database URL is
``POINTS_DATABASE_URL``; the settings every service shares (Kafka, keys) keep their contract names.
Nothing else in the code reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.messaging.kafka import KafkaSecurity

PLACEHOLDER_KEYS = {"changeme", "admin", "secret", "dev-admin-key"}


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = "service"
    database_url: str = "sqlite+aiosqlite:///./.data/service.db"
    # A fixed pool: connections stay open under load instead of being opened and closed per burst (each a
    # TLS handshake); a request that finds none free waits for one (then 503 after 30 s).
    database_pool_size: int = Field(20, ge=2, le=200)

    environment: str = Field(
        "production", validation_alias="LOYALTY_ENV",
        description="development (set explicitly, as `make run` does) admits a weak or placeholder admin key.")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_topic_prefix: str = Field(
        "", validation_alias="KAFKA_TOPIC_PREFIX",
        description="Prepended to every topic name; lets test runs and tenants share one broker.",
    )
    kafka_partitions: int = Field(12, ge=1, validation_alias="KAFKA_PARTITIONS")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias="KAFKA_SECURITY_PROTOCOL")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, validation_alias="KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = Field(None, validation_alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias="KAFKA_SASL_PASSWORD")
    kafka_ssl_cafile: Path | None = Field(None, validation_alias="KAFKA_SSL_CAFILE")
    kafka_ssl_certfile: Path | None = Field(None, validation_alias="KAFKA_SSL_CERTFILE")
    kafka_ssl_keyfile: Path | None = Field(None, validation_alias="KAFKA_SSL_KEYFILE")
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

    def kafka_security(self) -> KafkaSecurity:
        return KafkaSecurity(
            protocol=self.kafka_security_protocol, sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username, sasl_password=self.kafka_sasl_password,
            ssl_cafile=self.kafka_ssl_cafile, ssl_certfile=self.kafka_ssl_certfile, ssl_keyfile=self.kafka_ssl_keyfile,
        )

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> ServiceSettings:
        self.kafka_security()  # refuses SASL without credentials, a certificate without its key
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        key = self.bootstrap_admin_key.get_secret_value() if self.bootstrap_admin_key else None
        if self.environment != "development" and key is not None and weak_key(key):
            raise ValueError("LOYALTY_BOOTSTRAP_ADMIN_KEY is a placeholder, shorter than 16 characters or made of "
                             "fewer than 8 different characters; LOYALTY_ENV=development admits it")
        return self


def weak_key(key: str) -> bool:
    return key.lower() in PLACEHOLDER_KEYS or len(key) < 16 or len(set(key)) < 8
