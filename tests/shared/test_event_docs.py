"""The event documents checked in under docs/events/ agree with the models in shared/messaging/events.py, and what
the models produce validates against them."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest

from shared.messaging.asyncapi import DOCS_DIR, SAMPLES, TOPICS, asyncapi_document, event_docs, producer_of
from shared.messaging.events import EVENT_TYPES
from tests.support import service_client

REGENERATE = "docs/events/ is out of date with shared/messaging/events.py: run `loyalty docs events` " \
             "(or `python -m shared.messaging.asyncapi`) and commit the result"


def checked_in(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DOCS_DIR / name).read_text())
    return document


def test_checked_in_documents_match_the_models() -> None:
    expected = event_docs()
    present = {path.name for path in DOCS_DIR.glob("*.json")}
    assert present == set(expected), f"{REGENERATE} (files differ: {sorted(present ^ set(expected))})"
    for name, text in expected.items():
        assert (DOCS_DIR / name).read_text() == text, f"{REGENERATE} ({name} differs)"


def test_every_event_type_is_documented_on_its_topic() -> None:
    document = checked_in("asyncapi.json")
    assert document["asyncapi"].startswith("3.")
    for event_type, event in EVENT_TYPES.items():
        channel = document["channels"][event.TOPIC.value]
        assert channel["address"] == event.TOPIC.value
        assert channel["messages"][event_type] == {"$ref": f"#/components/messages/{event_type}"}
        message = document["components"]["messages"][event_type]
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        assert message["payload"]["properties"]["type"] == {"const": event_type, "title": "Type"}
        sends = document["operations"][f"{producer_of(event)}-sends-{event.TOPIC.value}"]
        assert {"$ref": f"#/channels/{event.TOPIC.value}/messages/{event_type}"} in sends["messages"]
    assert set(document["channels"]) == {topic.value for topic in TOPICS}


def test_every_reference_in_the_asyncapi_document_resolves() -> None:
    document = checked_in("asyncapi.json")

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    for ref in refs(document):
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert part in target, f"unresolved {ref}"
            target = target[part]


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_events_the_models_produce_validate_against_the_checked_in_schema(event_type: str) -> None:
    event = EVENT_TYPES[event_type]
    validator = jsonschema_rs.validator_for(checked_in(f"{event_type}.schema.json"))
    produced = event.model_validate(SAMPLES[event_type]).envelope(producer_of(event), correlation_id=None)
    message = produced.model_dump(mode="json")
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(message)]
    assert not errors, errors
    # With every optional field left out, too: a consumer must cope with the smallest message.
    required = {name: value for name, value in SAMPLES[event_type].items()
                if event.model_fields[name].is_required()}
    smallest = event.model_validate(required).envelope(producer_of(event)).model_dump(mode="json")
    assert validator.is_valid(smallest), list(validator.iter_errors(smallest))


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_a_message_without_its_data_or_with_another_type_is_refused(event_type: str) -> None:
    validator = jsonschema_rs.validator_for(checked_in(f"{event_type}.schema.json"))
    example = checked_in(f"{event_type}.schema.json")["examples"][0]
    assert validator.is_valid(example)
    assert not validator.is_valid({key: value for key, value in example.items() if key != "data"})
    other = next(t for t in EVENT_TYPES if t != event_type)
    assert not validator.is_valid({**example, "type": other})


@pytest.mark.parametrize("service", ["points", "rewards", "tiers"])
async def test_every_service_serves_the_document_without_a_key(service: str, pg: None) -> None:
    async with service_client(service) as (_, client):
        answer = await client.get("/asyncapi.json", headers={"Authorization": ""})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == asyncapi_document() == checked_in("asyncapi.json")
