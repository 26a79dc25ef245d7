"""The audit trail of every service: each admin route that changes something leaves one entry, in its own
transaction, with the key's name, the resource and its state before and after; a replay, a PUT that changes
nothing, a refused request and a read leave none. The routes are walked from each OpenAPI document, so a new
admin write fails here until it is audited or listed in ``NOT_AUDITED`` with the reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.clock import utcnow
from tests.points.builders import program as points_program
from tests.rewards.builders import reward
from tests.shared.store_keys import SECOND_ADMIN, TILL, write_till_keys
from tests.support import SERVICES, service_client
from tests.tiers.builders import program as tiers_program

ACTOR = "ops-2"  # SECOND_ADMIN's name in the keys file
RULE = {"rule_id": "double-coffee", "kind": "multiplier", "factor": "2", "match": {"categories": ["coffee"]}}

# (method, path as in the document, path to call, body, action, resource), in the order they are made.
Change = tuple[str, str, str, dict[str, Any] | None, str, str]
CHANGES: dict[str, list[Change]] = {
    "points": [
        ("PUT", "/v1/program", "/v1/program", points_program(expiry_days=400), "program.changed", "program"),
        ("POST", "/v1/earning-rules", "/v1/earning-rules", RULE, "rule.created", "earning-rule:double-coffee"),
        ("PATCH", "/v1/earning-rules/{rule_id}", "/v1/earning-rules/double-coffee", {"factor": "3"},
         "rule.updated", "earning-rule:double-coffee"),
        ("DELETE", "/v1/earning-rules/{rule_id}", "/v1/earning-rules/double-coffee", None, "rule.deleted",
         "earning-rule:double-coffee"),
        ("POST", "/v1/members/{member_id}/adjustments", "/v1/members/A-1/adjustments",
         {"adjustment_id": "goodwill-1", "points": 40, "reason": "late delivery"}, "points.adjusted",
         "member:A-1"),
        ("POST", "/v1/members/{member_id}/transfers", "/v1/members/A-1/transfers",
         {"transfer_id": "family-1", "to_member_id": "A-2", "points": 15}, "points.transferred", "member:A-1"),
    ],
    "rewards": [
        ("PUT", "/v1/rewards/{reward_id}", "/v1/rewards/cup", reward(), "reward.created", "reward:cup"),
        ("PUT", "/v1/rewards/{reward_id}", "/v1/rewards/cup", {**reward(), "points_cost": 250}, "reward.updated",
         "reward:cup"),
    ],
    "tiers": [
        ("PUT", "/v1/tiers", "/v1/tiers", tiers_program(), "tiers.changed", "tiers"),
    ],
}
NOT_AUDITED = {
    ("points", "POST", "/v1/earning-rules/simulate"): "stores nothing",
    ("points", "POST", "/v1/jobs/goals"): "runs the minute job's goal settlement now: no one's setting changes",
    ("tiers", "POST", "/v1/jobs/segments"): "runs the nightly segmentation now: no one's setting changes",
}


def admin_writes(document: dict[str, Any]) -> set[tuple[str, str]]:
    """The operations only an admin key may call that write."""
    found = set()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            scopes = {scope for requirement in operation.get("security", []) for values in requirement.values()
                      for scope in values}
            if method.upper() in {"POST", "PUT", "PATCH", "DELETE"} and scopes == {"admin"}:
                found.add((method.upper(), path))
    return found


async def trail(client: httpx.AsyncClient, **query: Any) -> list[dict[str, Any]]:
    answer = await client.get("/v1/audit", params=query, headers=SECOND_ADMIN)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


@pytest.mark.parametrize("service", SERVICES)
async def test_every_admin_change_is_in_the_trail_with_its_actor_before_and_after(
        service: str, empty_db: Any, tmp_path: Path) -> None:
    await empty_db(service)
    async with service_client(service, api_keys_file=write_till_keys(tmp_path / "keys.json")) as (app, client):
        walked = admin_writes(app.openapi())
        listed = {(m, p) for s, m, p in NOT_AUDITED if s == service} | {(m, p) for m, p, *_ in CHANGES[service]}
        assert walked == listed, "audit these routes, or list them in NOT_AUDITED with the reason"
        if service == "points":  # the members the adjustment and the transfer are about
            for member_id in ("A-1", "A-2"):
                assert (await client.put(f"/v1/members/{member_id}", json={"name": "Ann"})).status_code == 201

        for method, _, url, body, _, _ in CHANGES[service]:
            answer = await client.request(method, url, json=body, headers=SECOND_ADMIN)
            assert answer.is_success, answer.text
        entries = list(reversed(await trail(client)))  # oldest first
        assert [(e["actor"], e["action"], e["resource"]) for e in entries] == [
            (ACTOR, action, resource) for *_, action, resource in CHANGES[service]]
        for entry, (method, *_) in zip(entries, CHANGES[service], strict=True):
            assert entry["after"] is not None or method == "DELETE"
            assert "Ann" not in str(entry)  # members appear by id, never by name or contacts

        # Asked again (a replay) or refused: nothing more in the trail.
        method, _, url, body, _, _ = CHANGES[service][-1]
        again = await client.request(method, url, json=body, headers=SECOND_ADMIN)
        refused = await client.request(method, url, json={"nonsense": True}, headers=SECOND_ADMIN)
        assert again.is_success and refused.status_code == 422
        assert again.status_code == 200  # the transfer's replay; the same PUT again changes nothing
        assert len(await trail(client)) == len(entries)


async def test_the_trail_keeps_before_and_after_and_is_filtered_and_paged(empty_db: Any, tmp_path: Path) -> None:
    await empty_db("points")
    async with service_client("points", api_keys_file=write_till_keys(tmp_path / "keys.json")) as (_, client):
        assert (await client.post("/v1/earning-rules", json=RULE)).status_code == 201  # the bootstrap admin
        for factor in ("3", "4"):
            answer = await client.patch("/v1/earning-rules/double-coffee", json={"factor": factor},
                                        headers=SECOND_ADMIN)
            assert answer.status_code == 200, answer.text
        changes = await trail(client, resource="earning-rule:double-coffee", actor=ACTOR)
        assert [(e["before"]["factor"], e["after"]["factor"]) for e in changes] == [("3", "4"), ("2", "3")]
        assert [e["actor"] for e in await trail(client)] == [ACTOR, ACTOR, "bootstrap-admin"]

        first = (await client.get("/v1/audit", params={"limit": 1}, headers=SECOND_ADMIN)).json()
        second = (await client.get("/v1/audit", params={"limit": 2, "cursor": first["next_cursor"]},
                                   headers=SECOND_ADMIN)).json()
        assert [e["after"]["factor"] for e in first["items"] + second["items"]] == ["4", "3", "2"]
        assert second["next_cursor"] is None
        assert await trail(client, since=(utcnow() + timedelta(hours=1)).isoformat()) == []
        assert len(await trail(client, since=(utcnow() - timedelta(hours=1)).isoformat())) == 3
        for query in ({"since": "1700000000"}, {"cursor": "forged"}, {"actor": "a\x00b"}, {"limit": "0"}):
            answer = await client.get("/v1/audit", params=query, headers=SECOND_ADMIN)
            assert answer.status_code == 422, (query, answer.text)
        assert (await client.get("/v1/audit", headers=TILL)).status_code == 403
