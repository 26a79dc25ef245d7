"""Kafka clients and topics. Clients are created inside lifespans and jobs, never at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared.messaging.events import Topic

log = logging.getLogger(__name__)

DLT_SUFFIX = ".dlt"
# The loyalty topics are the program's history (rebuilds replay them), so they are kept forever.
TOPIC_CONFIG = {"retention.ms": "-1"}


def topic_name(prefix: str, topic: str) -> str:
    return f"{prefix}{topic}"


def all_topic_names(prefix: str) -> list[str]:
    names = [topic_name(prefix, t.value) for t in Topic]
    return names + [n + DLT_SUFFIX for n in names]


def make_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        linger_ms=2,
        request_timeout_ms=15000,
    )


async def ensure_topics(bootstrap: str, names: list[str], partitions: int, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
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


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
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
