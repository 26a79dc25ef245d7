"""Prometheus metrics every service exposes at /metrics.

Three kinds live here: HTTP and event-handling figures of the process; business counters, counted from the
events a service commits to its outbox (``count_committed``, called once per committed transaction, so a
rolled-back transaction counts nothing and a retried request replayed from its idempotency key counts once);
and gauges of the delivery machinery (outbox backlog, consumer lag). docs/operations.md lists them all with
their meaning and suggested alerts.

Counters are per process: with several instances, sum them over instances (``sum by (service)``); gauges
that describe a shared database (the outbox backlog) are reported alike by every instance, so take ``max``.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.messaging import events

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

# --- delivery machinery --------------------------------------------------------------------------------

OUTBOX_BACKLOG = Gauge(
    "loyalty_outbox_backlog", "Outbox rows not yet published to Kafka (refreshed every few seconds)", ["service"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "loyalty_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row; 0 when none (refreshed every few seconds)", ["service"],
)
# Set by the consumer after each fetch: the partition's high watermark minus the group's position.
CONSUMER_LAG = Gauge(
    "loyalty_consumer_lag", "Events on a partition not yet handled by this instance's consumer",
    ["service", "topic", "partition"],
)
# Incremented by the consumer each time it gives up on an event and sends it to <topic>.dlt.
DEAD_LETTERS = Counter(
    "loyalty_dead_letters_total", "Events sent to <topic>.dlt after the last failed attempt", ["service", "topic"]
)

# --- business: counted from committed outbox events ---------------------------------------------------

MEMBERS_ENROLLED = Counter("loyalty_members_enrolled_total", "Members enrolled", ["service"])
PURCHASES = Counter("loyalty_purchases_total", "Purchases recorded", ["service"])
PURCHASE_AMOUNT = Counter(
    "loyalty_purchase_amount_total", "Sum of recorded purchase totals, in units of the currency",
    ["service", "currency"],
)
REFUNDS = Counter("loyalty_refunds_total", "Purchase refunds recorded", ["service"])
REFUND_AMOUNT = Counter(
    "loyalty_refund_amount_total", "Sum of refunded amounts, in units of the currency", ["service", "currency"]
)
POINTS_ISSUED = Counter(
    "loyalty_points_issued_total", "Points credited by purchases (kind=earn) and bonus rules (kind=bonus)",
    ["service", "kind"],
)
# Set by points' minute job from the database, so every process shows the same figures.
RULE_BUDGET_USED = Gauge(
    "loyalty_rule_budget_used_points", "Points an earning rule with a budget has given, net of refunds",
    ["service", "rule_id"],
)
RULE_EXHAUSTED = Gauge(
    "loyalty_rule_exhausted", "1 when an earning rule's budget is used up (it gives nothing more)",
    ["service", "rule_id"],
)
POINTS_SPENT = Counter("loyalty_points_spent_total", "Points debited for redemptions", ["service"])
POINTS_EXPIRED = Counter("loyalty_points_expired_total", "Points that expired unspent", ["service"])
POINTS_REFUNDED = Counter(
    "loyalty_points_refunded_total", "Points given back for cancelled redemptions", ["service"]
)
POINTS_REVERSED = Counter("loyalty_points_reversed_total", "Points taken back by purchase refunds", ["service"])
POINTS_ADJUSTED = Counter(
    "loyalty_points_adjusted_total", "Points added (direction=credit) or removed (debit) by operators",
    ["service", "direction"],
)
POINTS_TRANSFERRED = Counter("loyalty_points_transferred_total", "Points moved between members", ["service"])
SPENDS_DECLINED = Counter(
    "loyalty_points_spend_declined_total", "Redemption payments declined by points, by reason", ["service", "reason"]
)
REDEMPTIONS = Counter(
    "loyalty_redemptions_total",
    "Redemptions by outcome: requested (accepted and pending), confirmed, rejected, cancelled",
    ["service", "outcome"],
)
TIER_CHANGES = Counter(
    "loyalty_tier_changes_total", "tier.changed events by reason (enrolled, upgrade, downgrade, tiers-changed)",
    ["service", "reason"],
)


def count_committed(service: str, data: events.EventData) -> None:
    """Counts one event that ``service`` committed to its outbox: the business figures move only here.

    Called after the commit (never for a rolled-back transaction) and only for events that state a new fact:
    a repeated answer or a re-asked request is written with ``Outbox.add(..., repeated=True)`` and not counted.
    """
    match data:
        case events.MemberEnrolled() if type(data) is events.MemberEnrolled:  # not its subclass MemberUpdated
            MEMBERS_ENROLLED.labels(service).inc()
        case events.PurchaseRecorded():
            PURCHASES.labels(service).inc()
            PURCHASE_AMOUNT.labels(service, data.currency).inc(float(data.total))
        case events.PurchaseRefunded():
            REFUNDS.labels(service).inc()
            REFUND_AMOUNT.labels(service, data.currency).inc(float(data.amount))
        case events.PointsEarned():
            POINTS_ISSUED.labels(service, data.kind).inc(data.points)
        case events.PointsSpent():
            POINTS_SPENT.labels(service).inc(data.points)
        case events.PointsExpired():
            POINTS_EXPIRED.labels(service).inc(data.points)
        case events.PointsRefunded():
            POINTS_REFUNDED.labels(service).inc(data.points)
        case events.PointsReversed():
            POINTS_REVERSED.labels(service).inc(data.points)
        case events.PointsAdjusted():
            direction = "credit" if data.points > 0 else "debit"
            POINTS_ADJUSTED.labels(service, direction).inc(abs(data.points))
        case events.PointsTransferred(direction="out"):  # the "in" half is the same points arriving
            POINTS_TRANSFERRED.labels(service).inc(data.points)
        case events.PointsSpendDeclined():
            SPENDS_DECLINED.labels(service, data.reason).inc()
        case events.RedemptionEvent():
            REDEMPTIONS.labels(service, data.TYPE.removeprefix("redemption.")).inc()
        case events.TierChanged():
            TIER_CHANGES.labels(service, data.reason).inc()


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
    """Request, event and business counters of this process (docs/operations.md explains each)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
