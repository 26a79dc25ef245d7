"""The tiers HTTP API against PostgreSQL: the program, members' tiers and history, scopes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.clock import utcnow
from shared.http.auth import hash_key
from tests.support import deliver, outbox_events, service_client
from tests.tiers.builders import enrolled, program, purchase, tier


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


# --- the program ------------------------------------------------------------------------------------


async def test_default_program_before_any_put(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/tiers")
    assert response.status_code == 200
    assert response.json() == {
        "basis": "spend", "window_days": 365, "retention_days": 365, "downgrade": "to_qualified",
        "tiers": [{"tier_id": "member", "name": "Member", "threshold": "0", "earn_multiplier": "1", "perks": []}],
        "updated_at": None, "updated_by": None,
    }


async def test_put_answers_and_stores_the_program(client: httpx.AsyncClient) -> None:
    body = program(basis="points", window_days=730, retention_days=90, downgrade="one_level",
                   tiers=[tier("blue", "0.00"), tier("gold", "1500", "1.25", perks=["lounge"])])
    response = await client.put("/v1/tiers", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["tiers"] == [
        {"tier_id": "blue", "name": "Blue", "threshold": "0", "earn_multiplier": "1", "perks": []},
        {"tier_id": "gold", "name": "Gold", "threshold": "1500", "earn_multiplier": "1.25", "perks": ["lounge"]},
    ]
    assert (answer["basis"], answer["window_days"], answer["retention_days"], answer["downgrade"]) == (
        "points", 730, 90, "one_level")
    assert answer["updated_by"] == "bootstrap-admin"
    assert (await client.get("/v1/tiers")).json() == answer


async def test_downgrade_defaults_to_to_qualified(client: httpx.AsyncClient) -> None:
    body = program()
    del body["downgrade"]
    assert (await client.put("/v1/tiers", json=body)).json()["downgrade"] == "to_qualified"


BAD_PROGRAMS: list[tuple[str, dict[str, Any], list[str | int]]] = [
    ("no tiers", program(tiers=[]), ["body", "tiers"]),
    ("duplicate id", program(tiers=[tier("a", "0"), tier("a", "10")]), ["body", "tiers", 1, "tier_id"]),
    ("first not 0", program(tiers=[tier("a", "5"), tier("b", "10")]), ["body", "tiers", 0, "threshold"]),
    ("not rising", program(tiers=[tier("a", "0"), tier("b", "10"), tier("c", "10")]),
     ["body", "tiers", 2, "threshold"]),
    ("falling", program(tiers=[tier("a", "0"), tier("b", "10"), tier("c", "5")]), ["body", "tiers", 2, "threshold"]),
    ("negative threshold", program(tiers=[tier("a", "0"), tier("b", "-1")]), ["body", "tiers", 1, "threshold"]),
    ("zero multiplier", program(tiers=[tier("a", "0", "0")]), ["body", "tiers", 0, "earn_multiplier"]),
    ("bad tier id", program(tiers=[tier("a b", "0")]), ["body", "tiers", 0, "tier_id"]),
    ("window 0", program(window_days=0), ["body", "window_days"]),
    ("window too long", program(window_days=3651), ["body", "window_days"]),
    ("retention 0", program(retention_days=0), ["body", "retention_days"]),
    ("unknown policy", program(downgrade="sometimes"), ["body", "downgrade"]),
    ("unknown basis", program(basis="visits"), ["body", "basis"]),
    ("points in fractions", program(basis="points", tiers=[tier("a", "0"), tier("b", "10.5")]),
     ["body", "tiers", 1, "threshold"]),
    ("unknown field", program(tiers=[tier("a", "0", colour="red")]), ["body", "tiers", 0, "colour"]),
]


@pytest.mark.parametrize(("body", "loc"), [(b, loc) for _, b, loc in BAD_PROGRAMS],
                         ids=[name for name, _, _ in BAD_PROGRAMS])
async def test_put_refuses_a_bad_program_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], loc: list[str | int]
) -> None:
    response = await client.put("/v1/tiers", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    assert loc in [error["loc"] for error in problem["errors"]], problem
    assert (await client.get("/v1/tiers")).json()["updated_at"] is None, "nothing was stored"


async def test_put_upgrades_existing_members_at_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.put("/v1/tiers", json=program(tiers=[tier("bronze", "0"), tier("silver", "1000", "1.5")]))
    await deliver(app, enrolled("C-1"))
    await deliver(app, purchase("p-1", "C-1", "600.00"))
    assert (await client.get("/v1/members/C-1/tier")).json()["tier_id"] == "bronze"

    assert (await client.put("/v1/tiers", json=program())).status_code == 200
    got = (await client.get("/v1/members/C-1/tier")).json()
    assert got["tier_id"] == "silver" and got["earn_multiplier"] == "1.5"
    history = (await client.get("/v1/members/C-1/tier/history")).json()["items"]
    assert [(h["from_tier"], h["to_tier"], h["reason"]) for h in history] == [
        ("bronze", "silver", "upgrade"), (None, "bronze", "enrolled")]
    changed = (await outbox_events(app, "tier.changed"))[-1]["data"]
    assert (changed["from_tier"], changed["to_tier"], changed["rank"]) == ("bronze", "silver", 1)
    assert changed["ladder"] == ["bronze", "silver", "gold"] and changed["earn_multiplier"] == "1.5"


async def test_members_of_the_default_tier_move_to_the_new_ladder(client: httpx.AsyncClient, app: FastAPI) -> None:
    await deliver(app, enrolled("C-1"))
    await deliver(app, purchase("p-1", "C-1", "600.00"))
    assert (await client.get("/v1/members/C-1/tier")).json()["tier_id"] == "member"
    await client.put("/v1/tiers", json=program())
    history = (await client.get("/v1/members/C-1/tier/history")).json()["items"]
    assert (history[0]["from_tier"], history[0]["to_tier"], history[0]["reason"]) == (
        "member", "silver", "tiers-changed")


async def test_put_moves_members_of_a_removed_tier_and_tells_others_of_new_terms(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await client.put("/v1/tiers", json=program())
    await deliver(app, purchase("p-1", "C-1", "1200.00"))
    await deliver(app, purchase("p-2", "C-2", "700.00"))
    await deliver(app, purchase("p-3", "C-3", "10.00"))
    before = len(await outbox_events(app, "tier.changed"))

    without_gold = program(tiers=[tier("bronze", "0"), tier("silver", "500", "1.75")])
    assert (await client.put("/v1/tiers", json=without_gold)).status_code == 200
    assert (await client.get("/v1/members/C-1/tier")).json()["tier_id"] == "silver"
    history = (await client.get("/v1/members/C-1/tier/history")).json()["items"]
    assert (history[0]["from_tier"], history[0]["to_tier"], history[0]["reason"]) == (
        "gold", "silver", "tiers-changed")
    news = {e["subject"]: e["data"] for e in (await outbox_events(app, "tier.changed"))[before:]}
    assert set(news) == {"C-1", "C-2", "C-3"}
    assert news["C-2"]["from_tier"] == news["C-2"]["to_tier"] == "silver"
    assert news["C-2"]["earn_multiplier"] == "1.75" and news["C-2"]["ladder"] == ["bronze", "silver"]
    assert news["C-3"]["to_tier"] == "bronze" and news["C-3"]["reason"] == "tiers-changed"
    c2_history = (await client.get("/v1/members/C-2/tier/history")).json()["items"]
    assert [h["reason"] for h in c2_history] == ["upgrade", "enrolled"], "new terms are no move"

    again = len(await outbox_events(app, "tier.changed"))
    await client.put("/v1/tiers", json=without_gold)
    assert len(await outbox_events(app, "tier.changed")) == again, "the same program again tells nobody"


# --- a member's tier --------------------------------------------------------------------------------


async def test_member_tier_shows_progress(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.put("/v1/tiers", json=program())
    await deliver(app, enrolled("C-1"))
    await deliver(app, purchase("p-1", "C-1", "120.5"))
    got = (await client.get("/v1/members/C-1/tier")).json()
    assert got["member_id"] == "C-1" and got["tier_id"] == "bronze" and got["name"] == "Bronze"
    assert got["qualifying_value"] == "120.50" and got["earn_multiplier"] == "1"
    assert got["next_tier"] == {"tier_id": "silver", "threshold": "500.00", "remaining": "379.50"}
    assert got["since"].endswith("Z") and got["window_start"].endswith("Z")
    window_start = parse(got["window_start"])
    assert abs(window_start - (utcnow() - timedelta(days=365))) < timedelta(minutes=1)
    kept_for = parse(got["retained_until"]) - parse(got["since"])
    assert timedelta(days=365) <= kept_for < timedelta(days=365, minutes=1), "pushed on by the purchase"


async def test_member_at_the_top_has_no_next_tier(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.put("/v1/tiers", json=program())
    await deliver(app, purchase("p-1", "C-1", "2500"))
    got = (await client.get("/v1/members/C-1/tier")).json()
    assert got["tier_id"] == "gold" and got["next_tier"] is None and got["qualifying_value"] == "2500.00"


async def test_points_basis_shows_whole_points(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.put("/v1/tiers", json=program(basis="points", tiers=[tier("blue", "0"), tier("gold", "2000")]))
    await deliver(app, purchase("p-1", "C-1", "99.99", points=1500))
    got = (await client.get("/v1/members/C-1/tier")).json()
    assert got["qualifying_value"] == "1500"
    assert got["next_tier"] == {"tier_id": "gold", "threshold": "2000", "remaining": "500"}


async def test_unknown_member_is_404(client: httpx.AsyncClient) -> None:
    for path in ("/v1/members/nobody/tier", "/v1/members/nobody/tier/history"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json()["type"] == "/problems/member-not-found"


async def test_history_pages_newest_first(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.put("/v1/tiers", json=program(tiers=[tier(f"t{i}", str(i * 100)) for i in range(6)]))
    await deliver(app, enrolled("C-1"))
    for i in range(1, 6):
        await deliver(app, purchase(f"p-{i}", "C-1", "100"))
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/members/C-1/tier/history", params=params)).json()
        seen.extend(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [h["to_tier"] for h in seen] == ["t5", "t4", "t3", "t2", "t1", "t0"]
    assert seen[-1] == {"from_tier": None, "to_tier": "t0", "reason": "enrolled", "at": seen[-1]["at"]}
    assert all(h["reason"] == "upgrade" for h in seen[:-1])
    bad = await client.get("/v1/members/C-1/tier/history", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["type"] == "/problems/validation-error"


# --- scopes -----------------------------------------------------------------------------------------


async def test_scopes(tmp_path: Path, empty_db: Callable[[str], Awaitable[str]]) -> None:
    await empty_db("tiers")
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([
        {"name": "shop", "key_sha256": hash_key("shop-key"), "scopes": ["members:read"]},
        {"name": "till", "key_sha256": hash_key("till-key"), "scopes": ["purchases:write"]},
    ]))
    async with service_client("tiers", api_keys_file=keys) as (_, client):
        shop = {"Authorization": "Bearer shop-key"}
        assert (await client.get("/v1/tiers", headers=shop)).status_code == 200
        till = {"Authorization": "", "X-API-Key": "till-key"}
        assert (await client.get("/v1/tiers", headers=till)).status_code == 403
        refused = await client.put("/v1/tiers", json=program(), headers=shop)
        assert refused.status_code == 403 and refused.json()["type"] == "/problems/forbidden"
        assert (await client.get("/v1/tiers", headers={"Authorization": ""})).status_code == 401
        assert (await client.get("/v1/members/C-1/tier", headers={"Authorization": "", "X-API-Key": "wrong"})
                ).status_code == 401
