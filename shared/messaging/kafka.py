"""Kafka clients and topics. Clients are created inside lifespans and jobs, never at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from pydantic import BaseModel, SecretStr, model_validator

from shared.messaging.events import Topic

log = logging.getLogger(__name__)

DLT_SUFFIX = ".dlt"
# The loyalty topics are the program's history (rebuilds replay them), so they are kept forever.
TOPIC_CONFIG = {"retention.ms": "-1"}


class KafkaSecurity(BaseModel):
    """How the clients authenticate to the brokers and protect the connection (``KAFKA_SECURITY_PROTOCOL``,
    ``KAFKA_SASL_*``, ``KAFKA_SSL_*``; docs/operations.md has the ACLs each service needs). PLAINTEXT is for
    a broker on loopback or a private network only."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    @model_validator(mode="after")
    def _complete(self) -> KafkaSecurity:
        missing = self.sasl_mechanism is None or not self.sasl_username or self.sasl_password is None
        if self.protocol.startswith("SASL") and missing:
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={self.protocol} needs KAFKA_SASL_MECHANISM, "
                                 "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together (a client certificate)")
        return self

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of every aiokafka client (producer, consumer, admin)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol.endswith("SSL"):
            options["ssl_context"] = create_ssl_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
                certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
                keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None,
            )
        if self.protocol.startswith("SASL"):
            assert self.sasl_password is not None
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password.get_secret_value())
        return options


PLAINTEXT = KafkaSecurity()


def topic_name(prefix: str, topic: str) -> str:
    return f"{prefix}{topic}"


def all_topic_names(prefix: str) -> list[str]:
    names = [topic_name(prefix, t.value) for t in Topic]
    return names + [n + DLT_SUFFIX for n in names]


def make_producer(bootstrap: str, client_id: str, security: KafkaSecurity = PLAINTEXT) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        linger_ms=2,
        request_timeout_ms=15000,
        **security.client_options(),
    )


async def ensure_topics(bootstrap: str, names: list[str], partitions: int, timeout: float = 30.0,
                        security: KafkaSecurity = PLAINTEXT) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                                **security.client_options())
    await asyncio.wait_for(admin.start(), timeout)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if not missing:
            return
        new = [NewTopic(n, num_partitions=partitions, replication_factor=1, topic_configs=TOPIC_CONFIG)
               for n in missing]
        with contextlib.suppress(TopicAlreadyExistsError):  # another instance created them first
            await admin.create_topics(new)
        log.info("created topics %s", ", ".join(missing))
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: list[str], security: KafkaSecurity = PLAINTEXT) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                                **security.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            try:
                await admin.delete_topics(doomed)
            except KafkaError as exc:
                log.warning("could not delete topics %s: %s", doomed, exc)
    finally:
        await admin.close()
