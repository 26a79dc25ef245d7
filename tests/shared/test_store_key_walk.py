"""The IDOR walk: every operation of every service's OpenAPI, called with a till's key (store-bound to
store-12) on the ids of ANOTHER member and ANOTHER store (store-13). No answer may carry that member's e-mail,
phone or voucher code (unless the request itself sent it), none may be a 5xx, and no write for store-13 may
succeed.

The requests are built from the document: path (and query) parameters by name from ``VALUES``, bodies by the
name of their schema from ``bodies``. A new operation is walked without a change here; one the walk cannot
build a request for fails the test until it is built or listed in ``SKIPPED`` with the reason."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.clock import utcnow
from shared.messaging import events
from tests.points.builders import program as points_program
from tests.rewards.builders import put_reward, reward, settle
from tests.shared.store_keys import TILL, write_till_keys
from tests.support import SERVICES, deliver, service_client
from tests.tiers.builders import program as tiers_program

OTHER_MEMBER = "C-other"
OTHER_EMAIL = "other.member@example.com"
OTHER_PHONE = "+1 555 0199"
MY_MEMBER = "C-12"
OTHER_STORE = "store-13"  # every id of store-13's data carries the store's name: "a write for store-13"
OTHER_PURCHASE = f"{OTHER_STORE}:r-1"  # is one whose request names it
OTHER_REDEMPTION = "r-other"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}

# Operations the walk does not call, with the reason. Empty today: every operation can be built.
SKIPPED: dict[tuple[str, str, str], str] = {}

# Path and query parameters by name (optional query parameters are filled too when named here).
VALUES: dict[str, str] = {
    "member_id": OTHER_MEMBER, "purchase_id": OTHER_PURCHASE, "rule_id": f"{OTHER_STORE}-promo",
    "reward_id": "cup", "redemption_id": OTHER_REDEMPTION, "hold_id": f"{OTHER_STORE}:h-1",
    # finding a member by the other member's e-mail: the answer must still carry no phone
    "kind": "email", "value": OTHER_EMAIL,
    # "code": the other member's voucher code, known once rewards is seeded
}


def bodies() -> dict[str, Any]:
    """A minimal valid body for each request schema, by its name; all aimed at the other member and store."""
    now = utcnow().isoformat()
    purchase = {"purchase_id": f"{OTHER_STORE}:walk-1", "member_id": OTHER_MEMBER, "store_id": OTHER_STORE,
                "channel": "pos", "occurred_at": now, "currency": "USD", "total": "10.00"}
    return {
        "MemberIn": {"name": "Walker", "email": "walker@example.com"},
        "AdjustmentIn": {"adjustment_id": "walk-adjustment", "points": 5, "reason": "walk"},
        "TransferIn": {"transfer_id": "walk-transfer", "to_member_id": MY_MEMBER, "points": 1},
        "PurchaseIn": purchase,
        "QuoteIn": {key: value for key, value in purchase.items() if key != "purchase_id"},
        "HoldIn": {"hold_id": f"{OTHER_STORE}:walk-hold", "member_id": OTHER_MEMBER, "points": 5,
                   "store_id": OTHER_STORE},
        "CaptureIn": {"points": 1},
        "PurchaseBatchIn": {"purchases": [purchase, {**purchase, "purchase_id": f"{OTHER_STORE}:walk-2"}]},
        "RefundIn": {"refund_id": f"{OTHER_STORE}:walk-refund", "amount": "1.00", "occurred_at": now},
        "ProgramIn": points_program(),
        "MultiplierRuleIn": {"rule_id": f"{OTHER_STORE}-walk", "kind": "multiplier", "factor": "2",
                             "match": {"stores": [OTHER_STORE]}},
        "RulePatch": {"factor": "3"},
        "RewardIn": reward(),
        "RedemptionIn": {"redemption_id": "walk-redemption", "member_id": OTHER_MEMBER, "reward_id": "cup"},
        "VoucherUse": {"store_id": OTHER_STORE},
        "TierProgramIn": tiers_program(),
        "SimulationIn": {"rules": [{"rule_id": f"{OTHER_STORE}-walk", "kind": "multiplier", "factor": "2",
                                    "match": {"stores": [OTHER_STORE]}}],
                         "from": (utcnow() - timedelta(days=7)).isoformat(), "to": now},
    }


# --- seeding: the other member's and the other store's data, as the program's keys made them ------------


async def seed_points(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    for member_id, contacts in ((OTHER_MEMBER, {"email": OTHER_EMAIL, "phone": OTHER_PHONE}), (MY_MEMBER, {})):
        assert (await client.put(f"/v1/members/{member_id}", json={"name": "Someone", **contacts})).status_code == 201
    purchase = {**bodies()["PurchaseIn"], "purchase_id": OTHER_PURCHASE, "total": "50.00"}
    assert (await client.post("/v1/purchases", json=purchase)).status_code == 201
    rule = {**bodies()["MultiplierRuleIn"], "rule_id": VALUES["rule_id"]}
    assert (await client.post("/v1/earning-rules", json=rule)).status_code == 201
    hold = {**bodies()["HoldIn"], "hold_id": VALUES["hold_id"], "points": 10}
    assert (await client.post("/v1/holds", json=hold)).status_code == 201
    assert (await client.get(f"/v1/members/{OTHER_MEMBER}")).json()["email"] == OTHER_EMAIL  # there to leak
    return {}


async def seed_rewards(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    await put_reward(client, "cup")
    body = {"redemption_id": OTHER_REDEMPTION, "member_id": OTHER_MEMBER, "reward_id": "cup"}
    assert (await client.post("/v1/redemptions", json=body)).status_code == 202
    code = (await settle(app, client, OTHER_REDEMPTION))["voucher_code"]
    assert code  # there to leak
    return {"code": code}


async def seed_tiers(app: FastAPI, client: httpx.AsyncClient) -> dict[str, str]:
    at = utcnow() - timedelta(days=1)
    assert await deliver(app, events.MemberEnrolled(member_id=OTHER_MEMBER, status="active", enrolled_at=at)) \
        == "handled"
    assert await deliver(app, events.PurchaseRecorded(
        member_id=OTHER_MEMBER, purchase_id=OTHER_PURCHASE, store_id=OTHER_STORE, channel="pos", occurred_at=at,
        currency="USD", total="50.00", points_earned=50)) == "handled"
    return {}


SEEDS: dict[str, Callable[[FastAPI, httpx.AsyncClient], Awaitable[dict[str, str]]]] = {
    "points": seed_points, "rewards": seed_rewards, "tiers": seed_tiers}


# --- building requests from the document ------------------------------------------------------------------


def schema_names(schema: Any) -> list[str]:
    """The names of the component schemas a request body refers to, in order (through oneOf, anyOf...)."""
    if isinstance(schema, dict):
        found = [schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else []
        return found + [name for value in schema.values() for name in schema_names(value)]
    if isinstance(schema, list):
        return [name for item in schema for name in schema_names(item)]
    return []


def build(operation: dict[str, Any], path: str, values: dict[str, str], known_bodies: dict[str, Any]
          ) -> tuple[str, dict[str, str], Any] | str:
    """(url, query, body) for the operation, or why it cannot be built."""
    url, query = path, {}
    for parameter in operation.get("parameters", []):
        name, where = parameter["name"], parameter["in"]
        if where not in ("path", "query"):
            continue
        if name not in values:
            if parameter.get("required"):
                return f"no value for the {where} parameter {name!r}"
            continue
        if where == "path":
            url = url.replace("{" + name + "}", values[name])
        else:
            query[name] = values[name]
    body: Any = None
    if "requestBody" in operation:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        names = [name for name in schema_names(schema) if name in known_bodies]
        if not names:
            return f"no body for the schemas {schema_names(schema)}"
        body = known_bodies[names[0]]
    return url, query, body


def succeeded(answer: httpx.Response) -> bool:
    """A 2xx; for a batch, one whose items did not all fail."""
    if not answer.is_success:
        return False
    try:
        results = answer.json().get("results")
    except (ValueError, AttributeError):
        return True
    return not isinstance(results, list) or any(item.get("status", 500) < 300 for item in results)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_till_key_reaches_no_other_members_or_stores_data(
    service: str, empty_db: Callable[[str], Awaitable[str]], tmp_path: Path
) -> None:
    await empty_db(service)
    async with service_client(service, api_keys_file=write_till_keys(tmp_path / "keys.json")) as (app, client):
        values = {**VALUES, **await SEEDS[service](app, client)}
        secrets = [OTHER_EMAIL, OTHER_PHONE, *([values["code"], values["code"].replace("-", "")]
                                               if "code" in values else [])]
        document = app.openapi()
        operations = [(method.upper(), path, operation) for path, item in document["paths"].items()
                      for method, operation in item.items()]
        known_bodies = bodies()
        unbuilt, problems, walked = [], [], set()
        for method, path, operation in operations:
            if (service, method, path) in SKIPPED:
                continue
            request = build(operation, path, values, known_bodies)
            if isinstance(request, str):
                unbuilt.append(f"{method} {path}: {request}")
                continue
            url, query, body = request
            answer = await client.request(method, url, params=query, headers=TILL,
                                          **({"json": body} if body is not None else {}))
            walked.add((method, path))
            sent = url + json.dumps(query) + json.dumps(body)
            where = f"{method} {url} -> {answer.status_code}"
            if answer.status_code >= 500:
                problems.append(f"{where}: a server error")
            for secret in secrets:
                if secret not in sent and secret in answer.text:
                    problems.append(f"{where}: the answer carries {secret!r}")
            if method in WRITES and OTHER_STORE in sent and succeeded(answer):
                problems.append(f"{where}: a write for {OTHER_STORE} succeeded")
        assert unbuilt == [], "build these requests or list them in SKIPPED with the reason"
        assert problems == []
        listed = {(m, p) for s, m, p in SKIPPED if s == service}
        assert listed <= {(m, p) for m, p, _ in operations}, "SKIPPED names operations that are gone"
        assert walked | listed == {(m, p) for m, p, _ in operations}
        assert len(walked) >= 10
