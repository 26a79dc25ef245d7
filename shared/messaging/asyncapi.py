"""The event contract as documents other teams build on: an AsyncAPI 3.0 document of the topics and one
JSON Schema per event type, both generated from the pydantic models in ``shared/messaging/events.py``.

Every service serves the AsyncAPI document at ``GET /asyncapi.json``; the copies checked in under
``docs/events/`` are written by ``loyalty docs events`` (or ``python -m shared.messaging.asyncapi``), and a test
fails when they and the models disagree.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from shared.messaging.events import EVENT_TYPES, Envelope, EventData, Topic

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs" / "events"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"

TOPICS: dict[Topic, tuple[str, str]] = {  # producer, what the topic carries
    Topic.MEMBERS: ("points", "Enrolments and profile changes (points); segment changes (tiers). No e-mail, "
                              "phone or name ever leaves the points service."),
    Topic.PURCHASES: ("points", "Purchases recorded and refunded, with the points they earned or lost."),
    Topic.POINTS: ("points", "Every change of a member's points, with the balance after it; the answers to "
                             "redemption requests (spent or declined)."),
    Topic.REDEMPTIONS: ("rewards", "The redemption saga: requested, then confirmed or rejected; cancelled."),
    Topic.TIERS: ("tiers", "A member's tier changed, or the terms of the member's tier did."),
}
# Types written to a topic by another service than the topic's main producer.
OTHER_PRODUCERS = {"member.segment_changed": "tiers"}

# One example per type, with the ids the OpenAPI examples use; each must validate against its model.
SAMPLES: dict[str, dict[str, Any]] = {
    "member.enrolled": {"member_id": "C-1001", "status": "active", "enrolled_at": "2026-11-20T10:00:00Z",
                        "birth_month": 12, "referred_by": None},
    "member.updated": {"member_id": "C-1001", "status": "suspended", "enrolled_at": "2026-11-20T10:00:00Z",
                       "birth_month": 12, "referred_by": None},
    "member.segment_changed": {"member_id": "C-1001", "value_class": "B", "lifecycle": "active",
                               "previous_value_class": "C", "previous_lifecycle": "new",
                               "rfm": {"recency": 5, "frequency": 3, "monetary": 4}, "at": "2026-11-20T10:30:00Z"},
    "purchase.recorded": {"member_id": "C-1001", "purchase_id": "store-12:r-000123", "store_id": "store-12",
                          "channel": "pos", "occurred_at": "2026-11-20T10:15:00Z", "currency": "USD",
                          "total": "20.00", "points_earned": 40},
    "purchase.refunded": {"member_id": "C-1001", "purchase_id": "store-12:r-000123", "refund_id": "store-12:rf-9",
                          "occurred_at": "2026-11-21T09:00:00Z", "currency": "USD", "amount": "10.00",
                          "points_reversed": 20, "purchase_occurred_at": "2026-11-20T10:15:00Z"},
    "points.earned": {"member_id": "C-1001", "points": 40, "balance": {"available": 40, "pending": 0},
                      "kind": "earn", "rule_ids": ["base", "double-grocery"], "purchase_id": "store-12:r-000123",
                      "status": "credited", "occurred_at": "2026-11-20T10:15:00Z"},
    "points.spent": {"member_id": "C-1001", "points": 100, "balance": {"available": 150, "pending": 0},
                     "redemption_id": "web:r-4711"},
    "points.spend_declined": {"member_id": "C-1001", "redemption_id": "web:r-4711", "points": 100,
                              "reason": "insufficient-points"},
    "points.refunded": {"member_id": "C-1001", "points": 100, "balance": {"available": 250, "pending": 0},
                        "redemption_id": "web:r-4711"},
    "points.held": {"member_id": "C-1001", "points": 50, "balance": {"available": 50, "pending": 0, "held": 50},
                    "hold_id": "store-12:h-000123", "expires_at": "2026-11-20T10:29:00Z"},
    "points.released": {"member_id": "C-1001", "points": 50, "balance": {"available": 100, "pending": 0, "held": 0},
                        "hold_id": "store-12:h-000123", "reason": "voided"},
    "points.reversed": {"member_id": "C-1001", "points": 20, "balance": {"available": 20, "pending": 0},
                        "purchase_id": "store-12:r-000123", "refund_id": "store-12:rf-9"},
    "points.expiring": {"member_id": "C-1001", "points": 120, "balance": {"available": 250, "pending": 0},
                        "expires_at": "2027-01-31T23:59:59Z", "earned_at": "2026-01-31T23:59:59Z"},
    "points.expired": {"member_id": "C-1001", "points": 15, "balance": {"available": 5, "pending": 0}},
    "points.adjusted": {"member_id": "C-1001", "points": 250, "balance": {"available": 270, "pending": 0},
                        "adjustment_id": "ticket-4711", "reason": "Goodwill for a late delivery",
                        "actor": "support-desk"},
    "points.transferred": {"member_id": "C-1001", "points": 100, "balance": {"available": 170, "pending": 0},
                           "transfer_id": "family-2026-1", "to_member_id": "C-1002", "direction": "out"},
    "goal.reached": {"member_id": "C-1001", "goal_id": "goal-5f0c2a9e41d7b3c8a6e19d02", "rule_id": "coffee-card",
                     "period": "rolling-1", "metric": "purchases", "progress": "10", "target": "10", "points": 0,
                     "reward_id": "free-coffee"},
    "redemption.requested": {"member_id": "C-1001", "redemption_id": "web:r-4711", "reward_id": "cup",
                             "quantity": 1, "points_cost": 100},
    "redemption.confirmed": {"member_id": "C-1001", "redemption_id": "web:r-4711", "reward_id": "cup",
                             "quantity": 1, "points_cost": 100},
    "redemption.rejected": {"member_id": "C-1001", "redemption_id": "web:r-4711", "reward_id": "cup",
                            "quantity": 1, "points_cost": 100, "reason": "insufficient-points"},
    "redemption.cancelled": {"member_id": "C-1001", "redemption_id": "web:r-4711", "reward_id": "cup",
                             "quantity": 1, "points_cost": 100},
    "tier.changed": {"member_id": "C-1001", "from_tier": "bronze", "to_tier": "silver", "rank": 1,
                     "ladder": ["bronze", "silver"], "earn_multiplier": "1.5", "reason": "upgrade",
                     "at": "2026-11-20T10:15:00Z"},
}

SUMMARIES = {
    "member.enrolled": "A member was enrolled.",
    "member.updated": "A member's status, birth month or referrer changed (the whole state is sent again).",
    "member.segment_changed": "A member's value class or lifecycle changed in a segmentation run.",
    "purchase.recorded": "A purchase was recorded, with the points it earned.",
    "purchase.refunded": "Part or all of a purchase was refunded, with the points taken back.",
    "points.earned": "Points were credited: a purchase's own (`earn`) or a bonus.",
    "points.spent": "Points were debited: for a redemption (`redemption_id`, the answer that confirms it) or "
                    "by the capture of a checkout's hold (`hold_id`).",
    "points.held": "Points were set aside by a hold of the checkout: out of `available`, into `held`.",
    "points.released": "Held points came back to `available`: the hold was voided, expired, or captured for less.",
    "points.spend_declined": "A redemption could not be paid (the answer that rejects it).",
    "points.refunded": "Points came back: a cancelled redemption's (`redemption_id`), or the share of a refunded "
                       "purchase that a hold paid (`hold_id`).",
    "points.reversed": "A refund took back points of a purchase.",
    "points.expiring": "A lot of points expires in `expiry_reminder_days` (program setting): sent once per lot, "
                       "for the reminder e-mail that brings the member back.",
    "points.expired": "Lots reached their expiry date; their remainders left the balance.",
    "points.adjusted": "An operator added or removed points by hand.",
    "points.transferred": "Points moved between two members (one event for each side).",
    "goal.reached": "A member reached a goal's target in one of its periods: its points are credited with it "
                    "(`points.earned`), or rewards issues its catalog reward for free.",
    "redemption.requested": "A member asked for a reward; points answers with spent or declined.",
    "redemption.confirmed": "The points were taken and a voucher issued.",
    "redemption.rejected": "Points declined; the stock was released.",
    "redemption.cancelled": "A confirmed redemption was cancelled; points refunds it.",
    "tier.changed": "A member moved to another tier, or the terms of the member's tier changed.",
}


def producer_of(event: type[EventData]) -> str:
    return OTHER_PRODUCERS.get(event.TYPE) or TOPICS[event.TOPIC][0]


def _data_schema(event: type[EventData], ref_template: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The payload's JSON Schema as the producer serializes it, and the schemas it refers to."""
    schema = event.model_json_schema(mode="serialization", ref_template=ref_template)
    return schema, schema.pop("$defs", {})


def _envelope_schema(event: type[EventData], data_ref: str) -> dict[str, Any]:
    """The envelope of one type: ``type`` fixed, ``data`` its payload, ``subject`` the member id (the key)."""
    schema = Envelope.model_json_schema(mode="serialization")
    properties = schema["properties"]
    properties["id"]["description"] = "Unique per event (a UUID); consumers deduplicate on it."
    properties["type"] = {"const": event.TYPE, "title": "Type"}
    properties["source"]["examples"] = [producer_of(event)]
    properties["subject"]["description"] = "The member id, also the Kafka message key."
    properties["time"]["description"] = "When the event was written, UTC."
    properties["data"] = {"$ref": data_ref}
    schema["title"] = f"{event.__name__}Event"
    schema["description"] = SUMMARIES[event.TYPE]
    return schema


def sample_envelope(event_type: str) -> dict[str, Any]:
    """The sample of a type as a whole message, with a fixed id and time so the documents do not churn."""
    event = EVENT_TYPES[event_type]
    envelope = event.model_validate(SAMPLES[event_type]).envelope(producer_of(event), correlation_id="req-7f3a9c")
    envelope.id = "6f1c2a4e-8b7d-4c3e-9a51-2d0e7b6c4f18"
    envelope.time = envelope.time.replace(year=2026, month=11, day=20, hour=10, minute=15, second=0, microsecond=0)
    return envelope.model_dump(mode="json")


def event_json_schema(event_type: str) -> dict[str, Any]:
    """A self-contained JSON Schema (2020-12) of a whole message of one type."""
    event = EVENT_TYPES[event_type]
    data, defs = _data_schema(event, "#/$defs/{model}")
    envelope = _envelope_schema(event, f"#/$defs/{event.__name__}")
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": f"{event_type}.schema.json", "title": envelope.pop("title"),
            "description": envelope.pop("description"), **envelope, "examples": [sample_envelope(event_type)],
            "$defs": {**defs, event.__name__: data}}


def asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for topic, (_, description) in TOPICS.items():
        channels[topic.value] = {
            "address": topic.value, "title": topic.value,
            "description": f"{description} Keyed by member id: one member's events are in order. "
                           "Deployments may put a prefix before the name (`LOYALTY_KAFKA_TOPIC_PREFIX`).",
            "messages": {},
        }
    for event_type, event in EVENT_TYPES.items():
        data, defs = _data_schema(event, "#/components/schemas/{model}")
        schemas.update(defs)
        schemas[event.__name__] = data
        messages[event_type] = {
            "name": event_type, "title": event.__name__, "summary": SUMMARIES[event_type],
            "contentType": "application/json",
            "payload": _envelope_schema(event, f"#/components/schemas/{event.__name__}"),
            "bindings": {"kafka": {
                "key": {"type": "string", "description": "The member id (equal to the envelope's subject)."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }},
            "examples": [{"name": event_type, "payload": sample_envelope(event_type),
                          "headers": {}}],
        }
        channel = channels[event.TOPIC.value]
        channel["messages"][event_type] = {"$ref": f"#/components/messages/{event_type}"}
        producer = producer_of(event)
        operation = operations.setdefault(f"{producer}-sends-{event.TOPIC.value}", {
            "action": "send", "channel": {"$ref": f"#/channels/{event.TOPIC.value}"},
            "summary": f"{producer} publishes to {event.TOPIC.value} (through its outbox).", "messages": [],
        })
        operation["messages"].append({"$ref": f"#/channels/{event.TOPIC.value}/messages/{event_type}"})
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Loyalty events", "version": "1.0.0",
            "description": (
                "The events the points, rewards and tiers services exchange through Kafka. Every message value "
                "is a JSON envelope (`id`, `type`, `source`, `subject`, `time`, `version`, `correlation_id`, "
                "`data`) keyed by member id. A consumer ignores types it does not know and fields it does not "
                "know; each event takes effect once (consumers record the envelope `id`)."
            ),
        },
        "servers": {"local": {
            "host": "127.0.0.1:9092", "protocol": "kafka",
            "description": "The broker of `make run`; elsewhere the one `KAFKA_BOOTSTRAP_SERVERS` names.",
        }},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def event_docs() -> dict[str, str]:
    """Every generated file of ``docs/events/`` by name, as it is to be written."""
    files = {"asyncapi.json": render(asyncapi_document())}
    for event_type in EVENT_TYPES:
        files[f"{event_type}.schema.json"] = render(event_json_schema(event_type))
    return files


def write_event_docs(folder: Path = DOCS_DIR) -> list[Path]:
    """Writes the documents and removes schemas of types that no longer exist; returns what it wrote."""
    folder.mkdir(parents=True, exist_ok=True)
    files = event_docs()
    for stale in folder.glob("*.schema.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written


@cache
def _served() -> bytes:
    return render(asyncapi_document()).encode()


router = APIRouter(tags=["operations"])


@router.get(
    "/asyncapi.json", summary="The event contract (AsyncAPI 3.0)", response_class=JSONResponse,
    responses={200: {"description": "The AsyncAPI document", "content": {"application/json": {
        "schema": {"type": "object", "required": ["asyncapi", "info", "channels"]},
        "example": {"asyncapi": "3.0.0", "info": {"title": "Loyalty events", "version": "1.0.0"},
                    "channels": {"loyalty.purchases": {"address": "loyalty.purchases", "messages": {}}}},
    }}}},
)
async def asyncapi_json() -> Response:
    """The topics, the event types on each (the envelope with its `data` as JSON Schema) and their Kafka key,
    the member id: what a team needs to consume the topics. The same document is checked in under
    `docs/events/` with one JSON Schema per event type."""
    return Response(_served(), media_type="application/json")


if __name__ == "__main__":
    for path in write_event_docs(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS_DIR):
        print(path)
