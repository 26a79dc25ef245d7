"""One way to assemble a service: its FastAPI app with the database, keys, outbox relay, consumer and
scheduled jobs opened and closed in the lifespan.

Kafka is joined in the background: a service starts and takes writes while the broker is away (the
outbox keeps the events), and its relay and consumer begin as soon as the topics can be ensured.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import MetaData
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.context import correlation_id
from shared.db.database import Database
from shared.http import auth
from shared.http.apidocs import install_api_docs
from shared.http.audit import router as audit_router
from shared.http.auth import KeyStore
from shared.http.health import router as health_router
from shared.http.limits import BodySizeLimit
from shared.http.problems import install_error_handlers
from shared.http.types import TimeBounds
from shared.logs import configure_logging
from shared.messaging.asyncapi import router as asyncapi_router
from shared.messaging.consumer import BatchHandler, EventConsumer, Handler
from shared.messaging.events import Topic
from shared.messaging.kafka import all_topic_names, ensure_topics
from shared.messaging.outbox import OutboxRelay
from shared.metrics import MetricsMiddleware, metrics_endpoint
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)
_frozen = False


def _freeze_startup_objects() -> None:
    """What startup made (modules, the app, compiled routes and statements) lives as long as the process:
    kept out of the collector's reach, it is not walked again by every full collection, which under load
    cost about a tenth of a consumer's CPU. Once per process (a test run starts many apps)."""
    global _frozen
    if not _frozen:
        gc.freeze()
        _frozen = True

Job = Callable[["Runtime"], Awaitable[None]]
StartHook = Callable[[FastAPI], None]


@dataclass
class ServiceSpec:
    name: str
    title: str
    description: str
    metadata: MetaData
    routers: list[APIRouter]
    consumes: list[Topic] = field(default_factory=list)
    handlers: dict[str, Handler] = field(default_factory=dict)
    batch_handlers: dict[str, BatchHandler] = field(default_factory=dict)
    jobs: list[tuple[float, Job]] = field(default_factory=list)
    openapi_tags: list[dict[str, str]] = field(default_factory=list)
    on_start: list[StartHook] = field(default_factory=list)  # run once app.state holds db, keys, runtime


class Runtime:
    """What a running service holds; endpoints reach it as ``request.app.state.runtime``."""

    def __init__(self, spec: ServiceSpec, settings: ServiceSettings) -> None:
        self.spec = spec
        self.settings = settings
        self.db = Database(settings.database_url, pool_size=settings.database_pool_size)
        self.keys = KeyStore(
            settings.bootstrap_admin_key.get_secret_value() if settings.bootstrap_admin_key else None,
            settings.api_keys_file,
        )
        self.relay: OutboxRelay | None = None
        self.consumer: EventConsumer | None = None
        if settings.kafka_enabled:
            self.relay = OutboxRelay(
                self.db, spec.metadata.tables["outbox"], bootstrap=settings.kafka_bootstrap_servers,
                topic_prefix=settings.kafka_topic_prefix, client_id=f"{spec.name}-{uuid.uuid4().hex[:8]}",
                poll_seconds=settings.outbox_poll_seconds, service=spec.name, security=settings.kafka_security(),
            )
            if spec.consumes:
                self.consumer = EventConsumer(
                    self.db, spec.metadata.tables["inbox"], service=spec.name,
                    bootstrap=settings.kafka_bootstrap_servers, topic_prefix=settings.kafka_topic_prefix,
                    topics=spec.consumes, handlers=spec.handlers, batch_handlers=spec.batch_handlers,
                    max_attempts=settings.consumer_max_attempts, security=settings.kafka_security(),
                )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self.relay is not None:
            self._tasks.append(asyncio.create_task(self._join_kafka(), name=f"{self.spec.name}-kafka"))
            self._tasks.append(asyncio.create_task(self.relay.watch_backlog(), name=f"{self.spec.name}-backlog"))
        for interval, job in self.spec.jobs:
            self._tasks.append(asyncio.create_task(self._every(interval, job), name=f"{self.spec.name}-job"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.consumer is not None:
            await self.consumer.stop()
        if self.relay is not None:
            await self.relay.stop()
        await self.db.dispose()

    async def _join_kafka(self) -> None:
        settings = self.settings
        delay = 0.5
        while True:
            try:
                await ensure_topics(settings.kafka_bootstrap_servers, all_topic_names(settings.kafka_topic_prefix),
                                    settings.kafka_partitions, security=settings.kafka_security())
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: Kafka not reachable yet (%s); retrying in %.1fs", self.spec.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        assert self.relay is not None
        await self.relay.start()
        if self.consumer is not None:
            await self.consumer.start()

    async def _every(self, interval: float, job: Job) -> None:
        while True:
            await asyncio.sleep(interval)
            correlation_id.set(str(uuid.uuid4()))  # each run's events share an id of their own
            try:
                await job(self)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: scheduled job %s failed; next run in %.0fs",
                              self.spec.name, getattr(job, "__name__", job), interval)


class CorrelationMiddleware:
    """Takes ``X-Correlation-ID`` from the caller (or makes one) so events caused by a request carry it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = None
        for name, raw in scope.get("headers", ()):
            if name == b"x-correlation-id":
                value = raw.decode("latin-1")[:64] or None
        token = correlation_id.set(value or str(uuid.uuid4()))
        try:
            await self.app(scope, receive, send)
        finally:
            correlation_id.reset(token)


def create_service_app(spec: ServiceSpec, settings: ServiceSettings) -> FastAPI:
    if settings.log_format == "json":
        configure_logging(spec.name, settings.log_level)
    TimeBounds.max_past = timedelta(days=settings.max_past_days)
    TimeBounds.max_future = timedelta(hours=settings.max_future_hours)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(spec, settings)
        app.state.runtime = runtime
        app.state.db = runtime.db
        app.state.keys = runtime.keys
        for hook in spec.on_start:
            hook(app)
        await runtime.start()
        _freeze_startup_objects()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=spec.title, description=spec.description, version="1.0.0", lifespan=lifespan,
        openapi_tags=spec.openapi_tags or None, docs_url=None, redoc_url=None,  # install_api_docs serves them
    )
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(asyncapi_router)
    app.add_api_route(
        "/metrics", metrics_endpoint, methods=["GET"], tags=["operations"], summary="Prometheus metrics",
        response_class=PlainTextResponse,
        dependencies=[] if settings.metrics_public else [Depends(auth.require(auth.Scope.ADMIN))],
        description="Prometheus text format. Needs an `admin` key unless `LOYALTY_METRICS_PUBLIC=true` "
                    "(for a scraper inside a private network).",
    )
    for router in spec.routers:
        app.include_router(router)
    app.include_router(audit_router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, service=spec.name)
    app.add_middleware(CorrelationMiddleware)
    install_api_docs(app)
    return app


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def database(request: Request) -> Database:
    """Dependency: the service's database; endpoints open their transaction with ``db.transaction()``.
    ``async`` although it awaits nothing: FastAPI runs a plain ``def`` dependency in its thread pool, a
    thread hop on every request that cost points a quarter of its CPU under load (bench/README.md)."""
    db: Database = request.app.state.db
    return db


Db = Annotated[Database, Depends(database)]
