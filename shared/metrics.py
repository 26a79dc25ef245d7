"""Prometheus metrics every service exposes at /metrics."""

from __future__ import annotations

import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("loyalty.http")

HTTP_REQUESTS = Counter(
    "loyalty_http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "loyalty_http_request_seconds", "HTTP request latency", ["service", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_HANDLED = Counter(
    "loyalty_events_handled_total", "Kafka events consumed, by outcome", ["service", "type", "outcome"]
)
EVENTS_PUBLISHED = Counter("loyalty_events_published_total", "Outbox rows published to Kafka", ["service"])


class MetricsMiddleware:
    """Counts, times and logs each request, by route template (raw paths would explode label counts)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(self.service, scope["method"], path, str(status)).inc()
            HTTP_LATENCY.labels(self.service, scope["method"], path).observe(elapsed)
            log.info("request", extra={"method": scope["method"], "route": path, "path": scope["path"],
                                       "status": status, "duration_ms": round(elapsed * 1000, 2)})


async def metrics_endpoint() -> Response:
    """Request, event and business counters of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
