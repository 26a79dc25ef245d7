"""Each service's OpenAPI teaches: every operation has a summary, one tag, the scope it needs and its errors
as problem+json, with examples; and the examples work: replayed in order against the real app on
PostgreSQL with a key holding only the documented scope, each answers 2xx with a body its schema accepts."""

from __future__ import annotations

import importlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI

from shared.http.apidocs import PUBLIC, SECURITY_SCHEMES, TAGS, security
from shared.http.auth import KeyRecord, Scope, hash_key, write_keys_file
from shared.http.problems import PROBLEM_JSON
from shared.messaging import events
from shared.messaging.asyncapi import SAMPLES
from tests.support import SERVICES, deliver, service_client, settings_for

Operation = tuple[str, str]  # method, path
Hook = Callable[[FastAPI, httpx.AsyncClient], Awaitable[dict[str, str] | None]]

# Error answers that are not problem+json by design: /readyz tells what is down in its own body.
NOT_PROBLEMS = {("GET", "/readyz", "503")}


def openapi(service: str) -> dict[str, Any]:
    app: FastAPI = importlib.import_module(f"services.{service}.app").create_app(settings_for(service))
    return app.openapi()


def operations(schema: dict[str, Any]) -> dict[Operation, dict[str, Any]]:
    return {(method.upper(), path): operation for path, item in schema["paths"].items()
            for method, operation in item.items()}


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A schema with its ``$ref`` followed; an optional one (``anyOf`` with null) as its non-null part."""
    while True:
        if "$ref" in node:
            target: Any = schema
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        elif "anyOf" in node and any(option.get("type") == "null" for option in node["anyOf"]):
            node = next(option for option in node["anyOf"] if option.get("type") != "null")
        else:
            return node


def validator(schema: dict[str, Any], node: dict[str, Any]) -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator({**node, "components": schema["components"]})


def problems(check: jsonschema_rs.Draft202012Validator, value: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in check.iter_errors(value)]


def documented_examples(schema: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    """The examples /docs shows for a body: the media type's own, else its schema's."""
    if "examples" in media:
        return [example["value"] for example in media["examples"].values()]
    if "example" in media:
        return [media["example"]]
    target = resolve(schema, media.get("schema", {}))
    if "examples" in target:
        return list(target["examples"][:1])
    items = target.get("properties", {}).get("items")  # a page: the examples of its items
    if items is not None and "examples" in resolve(schema, items.get("items", {})):
        return [{"items": resolve(schema, items["items"])["examples"][:1], "next_cursor": None}]
    return []


def parameter_example(parameter: dict[str, Any]) -> Any:
    if "example" in parameter:
        return parameter["example"]
    if "examples" in parameter:
        return next(iter(parameter["examples"].values()))["value"]
    return parameter.get("schema", {}).get("examples", [None])[0]


# --- every operation documented ------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_has_a_summary_one_tag_and_its_scope(service: str) -> None:
    schema = openapi(service)
    for (method, path), operation in operations(schema).items():
        where = f"{service} {method} {path}"
        assert operation.get("summary"), where
        assert len(operation.get("tags", [])) == 1 and operation["tags"][0] in TAGS, (where, operation.get("tags"))
        scopes = operation["x-required-scopes"]
        lines = re.findall(r"^Scope: .*$", operation.get("description", ""), re.MULTILINE)
        assert len(lines) == 1, (where, lines)
        if scopes:
            assert all(f"`{scope}`" in lines[0] for scope in scopes), (where, lines, scopes)
            any_of = operation.get("x-any-of-scopes", False)
            assert (" or " in lines[0]) == any_of, (where, lines)
            assert operation["security"] == security(scopes, any_of), where
            assert {"401", "403"} <= set(operation["responses"]), where
        else:
            assert lines[0] == PUBLIC and operation["security"] == [], where
    assert set(schema["components"]["securitySchemes"]) == set(SECURITY_SCHEMES)
    used = {operation["tags"][0] for operation in operations(schema).values()}
    assert {tag["name"] for tag in schema["tags"]} == used
    assert all(tag.get("description") for tag in schema["tags"]), schema["tags"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_is_problem_json_with_examples_of_its_slugs(service: str) -> None:
    schema = openapi(service)
    problem = validator(schema, {"$ref": "#/components/schemas/Problem"})
    for (method, path), operation in operations(schema).items():
        for status, response in operation["responses"].items():
            if int(status) < 400 or (method, path, status) in NOT_PROBLEMS:
                continue
            where = f"{service} {method} {path} {status}"
            assert set(response.get("content", {})) == {PROBLEM_JSON}, where
            media = response["content"][PROBLEM_JSON]
            assert media["schema"] == {"$ref": "#/components/schemas/Problem"}, where
            assert media["examples"], where
            for slug, example in media["examples"].items():
                assert example["value"]["type"] == f"/problems/{slug}", where
                assert example["value"]["status"] == int(status), where
                assert f"`{slug}`" in response["description"], where
                assert not problems(problem, example["value"]), where
        if operation["x-required-scopes"] and (operation.get("parameters") or "requestBody" in operation):
            assert "422" in operation["responses"], f"{service} {method} {path}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_body_parameter_and_answer_has_examples_its_schema_accepts(service: str) -> None:
    schema = openapi(service)
    for (method, path), operation in operations(schema).items():
        where = f"{service} {method} {path}"
        for parameter in operation.get("parameters", []):
            if parameter.get("required"):
                assert parameter_example(parameter) is not None, (where, parameter["name"])
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            examples = documented_examples(schema, body)
            assert examples, f"{where}: no request example"
            check = validator(schema, body["schema"])
            for example in examples:
                assert not problems(check, example), (where, example, problems(check, example))
        for status, response in operation["responses"].items():
            media = response.get("content", {}).get("application/json")
            if not status.startswith("2") or media is None:
                continue
            examples = documented_examples(schema, media)
            assert examples, f"{where} {status}: no response example"
            check = validator(schema, media["schema"])
            for example in examples:
                assert not problems(check, example), (where, status, problems(check, example))


# --- the examples work -----------------------------------------------------------------------------------


async def enroll_second_member(_: FastAPI, client: httpx.AsyncClient) -> None:
    """The transfer example's receiver."""
    assert (await client.put("/v1/members/C-1002", json={"name": "Charles Babbage"})).status_code == 201


async def points_of_the_member(app: FastAPI, _: httpx.AsyncClient) -> None:
    """What points publishes after its examples, as tiers would consume it."""
    for event_type in ("member.enrolled", "purchase.recorded"):
        assert await deliver(app, events.EVENT_TYPES[event_type].model_validate(SAMPLES[event_type])) == "handled"


async def points_pays(app: FastAPI, client: httpx.AsyncClient, redemption_id: str = "web:r-4711") -> None:
    """Points' answer to the redemption, as rewards would consume it."""
    redemption = (await client.get(f"/v1/redemptions/{redemption_id}")).json()
    paid = events.PointsSpent(member_id=redemption["member_id"], redemption_id=redemption_id,
                              points=redemption["points_cost"], balance=events.BalanceSnapshot(available=0, pending=0))
    assert await deliver(app, paid) == "handled"


async def another_hold_to_void(_: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    """The example's hold was captured by the purchase that names it: void a second one."""
    body = {"hold_id": "store-12:h-000124", "member_id": "C-1001", "points": 10, "store_id": "store-12"}
    assert (await client.post("/v1/holds", json=body)).status_code == 201
    return {"hold_id": "store-12:h-000124"}


async def voucher_of_the_redemption(_: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    """Codes are random: the example stands for the one the confirmed redemption shows."""
    return {"code": (await client.get("/v1/redemptions/web:r-4711")).json()["voucher_code"]}


async def another_redemption_to_cancel(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    """The example's voucher was just used (which makes it not cancellable): cancel a second one."""
    body = {"redemption_id": "web:r-4712", "member_id": "C-1001", "reward_id": "cup", "quantity": 1}
    assert (await client.post("/v1/redemptions", json=body)).status_code == 202
    await points_pays(app, client, "web:r-4712")
    return {"redemption_id": "web:r-4712"}


OPERATIONS_ANSWERED_ANYWHERE: list[Operation] = [
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/asyncapi.json"), ("GET", "/metrics"),
    ("GET", "/v1/audit")]

# Each service's operations in the order a reader of /docs would try them, and what has to happen before
# one that the service's own examples cannot set up (events from another service, a random voucher code).
ORDER: dict[str, list[Operation]] = {
    "points": [
        *OPERATIONS_ANSWERED_ANYWHERE,
        ("PUT", "/v1/program"), ("GET", "/v1/program"),
        ("POST", "/v1/earning-rules"), ("GET", "/v1/earning-rules"), ("GET", "/v1/earning-rules/{rule_id}"),
        ("PATCH", "/v1/earning-rules/{rule_id}"), ("GET", "/v1/earning-rules/{rule_id}/report"),
        ("POST", "/v1/earning-rules/simulate"),
        ("PUT", "/v1/members/{member_id}"), ("GET", "/v1/members/{member_id}"),
        # The checkout as one story: quote, hold, the purchase paid partly with it, capture (a repeat now).
        ("POST", "/v1/quotes"), ("POST", "/v1/holds"),
        ("POST", "/v1/purchases"), ("POST", "/v1/holds/{hold_id}/capture"), ("GET", "/v1/holds/{hold_id}"),
        ("POST", "/v1/holds/{hold_id}/void"), ("POST", "/v1/purchases/batch"),
        ("POST", "/v1/purchases/{purchase_id}/refunds"),
        ("POST", "/v1/members/{member_id}/adjustments"), ("POST", "/v1/members/{member_id}/transfers"),
        ("GET", "/v1/members/{member_id}/balance"), ("GET", "/v1/members/{member_id}/ledger"),
        ("GET", "/v1/members/{member_id}/goals"), ("POST", "/v1/jobs/goals"),
        ("PUT", "/v1/members/{member_id}/identifiers/{kind}/{value}"), ("GET", "/v1/members/lookup"),
        ("GET", "/v1/members"), ("DELETE", "/v1/members/{member_id}/identifiers/{kind}/{value}"),
        ("DELETE", "/v1/earning-rules/{rule_id}"),
    ],
    "rewards": [
        *OPERATIONS_ANSWERED_ANYWHERE,
        ("PUT", "/v1/rewards/{reward_id}"), ("GET", "/v1/rewards"), ("GET", "/v1/rewards/{reward_id}"),
        ("POST", "/v1/redemptions"), ("GET", "/v1/redemptions/{redemption_id}"),
        ("GET", "/v1/members/{member_id}/redemptions"),
        ("GET", "/v1/vouchers/{code}"), ("POST", "/v1/vouchers/{code}/use"),
        ("POST", "/v1/redemptions/{redemption_id}/cancel"),
    ],
    "tiers": [
        *OPERATIONS_ANSWERED_ANYWHERE,
        ("PUT", "/v1/tiers"), ("GET", "/v1/tiers"),
        ("GET", "/v1/members/{member_id}/tier"), ("GET", "/v1/members/{member_id}/tier/history"),
        ("POST", "/v1/jobs/segments"), ("GET", "/v1/members/{member_id}/segment"),
        ("GET", "/v1/analytics/summary"), ("GET", "/dashboard"),
    ],
}
BEFORE: dict[Operation, Hook] = {
    ("POST", "/v1/members/{member_id}/transfers"): enroll_second_member,
    ("POST", "/v1/holds/{hold_id}/void"): another_hold_to_void,
    ("GET", "/v1/members/{member_id}/tier"): points_of_the_member,
    ("GET", "/v1/redemptions/{redemption_id}"): points_pays,
    ("GET", "/v1/vouchers/{code}"): voucher_of_the_redemption,
    ("POST", "/v1/vouchers/{code}/use"): voucher_of_the_redemption,
    ("POST", "/v1/redemptions/{redemption_id}/cancel"): another_redemption_to_cancel,
}


def key_of(scope: str) -> str:
    return f"docs-key-{scope}"


def keys_file(folder: Path) -> Path:
    """One key per scope, each holding nothing else: an example must work with just the documented scope."""
    path = folder / "keys.json"
    write_keys_file(path, [KeyRecord(name=f"only-{scope.value}", key_sha256=hash_key(key_of(scope.value)),
                                     scopes=[scope]) for scope in Scope])
    return path


async def replay(schema: dict[str, Any], operation: dict[str, Any], method: str, path: str,
                 client: httpx.AsyncClient, overrides: dict[str, str]) -> list[httpx.Response]:
    """Sends the operation once per documented request example, with the parameters' examples."""
    url, query = path, {}
    for parameter in operation.get("parameters", []):
        value = overrides.get(parameter["name"], parameter_example(parameter))
        if parameter["in"] == "path":
            url = url.replace("{" + parameter["name"] + "}", str(value))
        elif value is not None:
            query[parameter["name"]] = value
    scopes = operation["x-required-scopes"]
    assert len(scopes) <= 1 or operation.get("x-any-of-scopes"), f"{method} {path}: several scopes needed"
    headers = {"Authorization": f"Bearer {key_of(scopes[0])}" if scopes else ""}
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    bodies = documented_examples(schema, body) if body is not None else [None]
    return [await client.request(method, url, params=query, json=example, headers=headers) for example in bodies]


@pytest.mark.parametrize("service", SERVICES)
async def test_the_examples_work_in_order_with_just_the_documented_scope(
    service: str, empty_db: Callable[[str], Awaitable[str]], tmp_path: Path
) -> None:
    await empty_db(service)
    async with service_client(service, api_keys_file=keys_file(tmp_path)) as (app, client):
        schema = app.openapi()
        documented = operations(schema)
        assert sorted(ORDER[service]) == sorted(documented), "ORDER must list every operation exactly once"
        for method, path in ORDER[service]:
            operation = documented[(method, path)]
            hook = BEFORE.get((method, path))
            overrides = (await hook(app, client) if hook is not None else None) or {}
            for answer in await replay(schema, operation, method, path, client, overrides):
                where = f"{service} {method} {path} -> {answer.status_code}: {answer.text[:500]}"
                assert 200 <= answer.status_code < 300, where
                response = operation["responses"].get(str(answer.status_code))
                assert response is not None, f"{where}: status not documented"
                if answer.status_code == 204:
                    continue
                media_type = answer.headers["content-type"].split(";")[0]
                assert media_type in response.get("content", {}), f"{where}: {media_type} not documented"
                if media_type == "application/json":
                    check = validator(schema, response["content"][media_type]["schema"])
                    assert not problems(check, answer.json()), (where, problems(check, answer.json()))
