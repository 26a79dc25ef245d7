"""Strict reading of the request bodies and parameters of the three services (shared.http.types), as one table:
for each kind of field, every refused spelling is a 422 problem+json whose ``errors[].loc`` names the field,
and nothing is stored (the resources read back unchanged); the accepted spellings still work. On PostgreSQL and
on SQLite alike (text with NUL: PostgreSQL cannot store it, SQLite could, both refuse it)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.clock import utcnow
from shared.db.migrations import upgrade
from tests.support import service_client

Loc = list[str | int]

# The last of MONEY, INTEGER and MOMENT is null: left out ([:-1]) where a field may be null.
ARABIC_12, FULLWIDTH_2026 = "\u0661\u0662", "\uff12\uff10\uff12\uff16"  # digits of other scripts
MONEY = ["1_000", " 1", "1 ", ARABIC_12, f"{ARABIC_12}.\u0663\u0660", "12.3e1", "+1", "0x10", "NaN", "Infinity", "",
         12.3, 12.0, True, [1], {"v": 1}, None]
INTEGER = ["1_000", " 1", "1 ", ARABIC_12, "+1", "1.0", "", "0x1", True, False, 1.0, 2.5, [1], None]
MOMENT = [1795000000, "1795000000", 1795000000.5, "2026-11-20T10:15:00", "2026-11-20", "2026-11-20 10:15:00Z",
          "Fri, 20 Nov 2026 10:15:00 GMT", "2026-11-20T10:15:00 Z", f"{FULLWIDTH_2026}-11-20T10:15:00Z", True, None]
REASON = ["   ", "\u200b", "\u200b \u200b", "\t\n", "", "\ufeff", "a\x00", "\ud800"]
TEXT = ["a\x00b", "\x00", "a\ud800"]
DATE = [0, 19901210, "19901210", "1990-12-10T00:00:00", "10/12/1990", "1990-12-10 ", True]
BOOLEAN = [1, 0, "true", "yes", "on", None]
ZONE = ["Mars/Olympus", "localtime", "../etc/passwd", "/usr/share/zoneinfo/UTC", "", "UTC\x00", "Europe/Paris ", 1]
LIMIT = ["1_0", " 1", "1 ", ARABIC_12, "true", "1.0", "+1", "0x1"]
WAIT = ["1_0", " 1", ARABIC_12, "nan", "inf", "1e1", "true", "+1"]

PURCHASE = {"purchase_id": "bad-1", "member_id": "M1", "store_id": "s-1", "channel": "pos",
            "occurred_at": "2026-11-20T10:15:00Z", "currency": "USD", "total": "20.00",
            "lines": [{"sku": "A-1", "category": "grocery", "quantity": 2, "unit_price": "10.00"}]}
PROGRAM = {"currency": "USD", "points_per_unit": "1", "expiry_days": 365, "pending_days": 0,
           "excluded_categories": ["tobacco"], "time_zone": "UTC", "max_points_per_purchase": 1000}
MULTIPLIER = {"rule_id": "bad-rule", "kind": "multiplier", "factor": "2", "match": {"categories": ["grocery"]},
              "days_of_week": [1, 2], "valid_from": "2026-12-01T00:00:00Z"}
BONUS = {"rule_id": "bad-bonus", "kind": "bonus", "points": 10, "trigger": "min_spend", "min_spend": "5.00"}
REWARD = {"name": "Mug", "description": "Ceramic", "points_cost": 100, "stock": 5, "per_member_limit": 2,
          "valid_from": "2026-12-01T00:00:00Z", "active": True}
TIERS = {"basis": "spend", "window_days": 365, "retention_days": 365, "downgrade": "to_qualified",
         "tiers": [{"tier_id": "bronze", "name": "Bronze", "threshold": "0", "earn_multiplier": "1", "perks": ["a"]},
                   {"tier_id": "silver", "name": "Silver", "threshold": "500", "earn_multiplier": "1.5"}]}

# (service, method, url, a valid body, where the errors name it, {field path: refused values})
Row = tuple[str, str, str, dict[str, Any], Loc, dict[tuple[str | int, ...], list[Any]]]
TABLE: list[Row] = [
    ("points", "POST", "/v1/purchases", PURCHASE, ["body"], {
        ("total",): MONEY, ("lines", 0, "unit_price"): MONEY, ("lines", 0, "quantity"): INTEGER,
        ("occurred_at",): MOMENT, ("channel",): TEXT, ("lines", 0, "sku"): TEXT, ("lines", 0, "category"): TEXT}),
    ("points", "POST", "/v1/purchases/P0/refunds",
     {"refund_id": "bad-rf", "amount": "1.00", "occurred_at": "2026-11-20T12:00:00Z"}, ["body"],
     {("amount",): MONEY, ("occurred_at",): MOMENT}),
    ("points", "POST", "/v1/members/M1/adjustments", {"adjustment_id": "bad-a", "points": 5, "reason": "why"},
     ["body"], {("points",): INTEGER, ("reason",): REASON}),
    ("points", "POST", "/v1/members/M1/transfers",
     {"transfer_id": "bad-t", "to_member_id": "M2", "points": 5, "reason": "why"}, ["body"],
     {("points",): INTEGER, ("reason",): REASON}),
    ("points", "PUT", "/v1/program", PROGRAM, ["body"], {
        ("points_per_unit",): MONEY, ("expiry_days",): INTEGER, ("pending_days",): INTEGER,
        ("max_points_per_purchase",): INTEGER, ("excluded_categories", 0): TEXT, ("time_zone",): ZONE}),
    ("points", "POST", "/v1/earning-rules", MULTIPLIER, ["body", "multiplier"], {
        ("factor",): MONEY, ("days_of_week", 0): INTEGER, ("valid_from",): MOMENT[:-1],
        ("match", "categories", 0): TEXT}),
    ("points", "POST", "/v1/earning-rules", BONUS, ["body", "bonus"], {
        ("points",): INTEGER, ("min_spend",): MONEY}),
    ("points", "PATCH", "/v1/earning-rules/R0", {"factor": "3", "days_of_week": [1]}, ["body"], {
        ("factor",): MONEY[:-1], ("days_of_week", 0): INTEGER, ("valid_until",): MOMENT[:-1]}),
    ("points", "PUT", "/v1/members/M1", {"name": "Ada", "birth_date": "1990-12-10"}, ["body"], {
        ("name",): TEXT, ("birth_date",): DATE, ("email",): ["a\x00@example.com"]}),
    ("rewards", "PUT", "/v1/rewards/bad", REWARD, ["body"], {
        ("points_cost",): INTEGER, ("stock",): INTEGER[:-1], ("per_member_limit",): INTEGER[:-1],
        ("valid_from",): MOMENT[:-1], ("name",): TEXT, ("description",): TEXT, ("active",): BOOLEAN}),
    ("rewards", "POST", "/v1/redemptions",
     {"redemption_id": "bad-r", "member_id": "M1", "reward_id": "cup", "quantity": 1}, ["body"],
     {("quantity",): INTEGER}),
    ("tiers", "PUT", "/v1/tiers", TIERS, ["body"], {
        ("tiers", 0, "threshold"): MONEY, ("tiers", 1, "earn_multiplier"): MONEY, ("window_days",): INTEGER,
        ("retention_days",): INTEGER, ("tiers", 0, "name"): TEXT, ("tiers", 0, "perks", 0): TEXT}),
]
# (service, url, query parameter, refused values)
QUERIES = [
    ("points", "/v1/members/M1/ledger", "limit", LIMIT), ("points", "/v1/earning-rules", "limit", LIMIT),
    ("rewards", "/v1/rewards", "limit", LIMIT), ("rewards", "/v1/members/M1/redemptions", "limit", LIMIT),
    ("rewards", "/v1/redemptions/r-1", "wait", WAIT), ("tiers", "/v1/members/M1/tier/history", "limit", LIMIT),
]
# What each service must still answer alike after the refused requests: nothing of them was stored.
READS = {
    "points": ["/v1/members/M1", "/v1/members/M1/ledger", "/v1/members/M2/ledger", "/v1/program",
               "/v1/earning-rules"],
    "rewards": ["/v1/rewards", "/v1/redemptions/bad-r"],
    "tiers": ["/v1/tiers"],
}


def named(prefix: Loc, path: tuple[str | int, ...]) -> list[Loc]:
    """The locs that name the field: its path, or for an item of a list of text the list (text is checked a
    field at a time)."""
    full = [*prefix, *path]
    return [full, full[:-1]] if isinstance(full[-1], int) and isinstance(full[-2], str) else [full]


def with_value(body: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    place: Any = changed
    for key in path[:-1]:
        place = place[key]
    place[path[-1]] = value
    return changed


async def send(client: httpx.AsyncClient, method: str, url: str, body: Any) -> httpx.Response:
    # json.dumps escapes what is not ASCII, so lone surrogates travel as the \ud800 a client would send
    return await client.request(method, url, content=json.dumps(body), headers={"Content-Type": "application/json"})


async def state(client: httpx.AsyncClient, service: str) -> list[Any]:
    return [((answer := await client.get(url)).status_code, answer.json()) for url in READS[service]]


@asynccontextmanager
async def running(service: str, backend: str, empty_db: Callable[[str], Awaitable[str]], tmp_path: Path
                  ) -> AsyncIterator[httpx.AsyncClient]:
    if backend == "postgresql":
        await empty_db(service)
        overrides: dict[str, Any] = {}
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / f'{service}.db'}"
        await asyncio.to_thread(upgrade, service, url)
        overrides = {"database_url": url}
    async with service_client(service, **overrides) as (_, client):
        yield client


async def prepare(client: httpx.AsyncClient, service: str) -> None:
    """What the valid bodies need: members M1 and M2 with a purchase P0 to refund and a rule R0 (points), a
    reward cup (rewards)."""
    if service == "points":
        for member in ("M1", "M2"):
            assert (await client.put(f"/v1/members/{member}", json={"name": "Ada"})).status_code == 201
        answer = await client.post("/v1/purchases", json={**PURCHASE, "purchase_id": "P0", "total": "100.00",
                                                          "lines": None, "occurred_at": "2026-11-20T10:00:00Z"})
        assert answer.status_code == 201, answer.text
        answer = await client.post("/v1/earning-rules", json={**MULTIPLIER, "rule_id": "R0"})
        assert answer.status_code == 201, answer.text
    elif service == "rewards":
        assert (await client.put("/v1/rewards/cup", json=REWARD)).status_code == 201


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
@pytest.mark.parametrize("service", ["points", "rewards", "tiers"])
async def test_refused_spellings_are_422_naming_the_field_and_store_nothing(
    service: str, backend: str, empty_db: Callable[[str], Awaitable[str]], tmp_path: Path
) -> None:
    async with running(service, backend, empty_db, tmp_path) as client:
        await prepare(client, service)
        before = await state(client, service)
        tried = 0
        for row_service, method, url, body, prefix, fields in TABLE:
            if row_service != service:
                continue
            assert (await send(client, method, url, body)).status_code in (200, 201, 202), (url, body)  # as a
            # control: the body is valid as it is; now undo what it did (the state is compared below)
            await undo(client, service, url)
            before = await state(client, service)
            for path, refused in fields.items():
                for value in refused:
                    answer = await send(client, method, url, with_value(body, path, value))
                    assert answer.status_code == 422, (url, path, value, answer.text)
                    assert answer.headers["content-type"].startswith("application/problem+json")
                    problem = answer.json()
                    assert problem["type"] == "/problems/validation-error", (url, path, value, problem)
                    locs = [error["loc"] for error in problem["errors"]]
                    assert any(loc in named(prefix, path) for loc in locs), (url, path, value, locs)
                    tried += 1
            assert await state(client, service) == before, url
        for row_service, url, parameter, refused in QUERIES:
            if row_service != service:
                continue
            for value in refused:
                answer = await client.get(url, params={parameter: value})
                assert answer.status_code == 422, (url, parameter, value, answer.text)
                assert ["query", parameter] in [error["loc"] for error in answer.json()["errors"]]
                tried += 1
        assert await state(client, service) == before
        assert tried > 40
        if service == "points":  # nothing of the refused refunds was kept: all of P0 is still refundable
            answer = await client.post("/v1/purchases/P0/refunds", json={  # (less the control's 1.00)
                "refund_id": "all", "amount": "99.00", "occurred_at": "2026-11-21T09:00:00Z"})
            assert answer.status_code == 201 and answer.json()["points_reversed"] == 99, answer.text


async def undo(client: httpx.AsyncClient, service: str, url: str) -> None:
    """Takes the control request back where it left something the refused ones could be confused with."""
    if url == "/v1/earning-rules":
        for rule_id in ("bad-rule", "bad-bonus"):
            await client.delete(f"/v1/earning-rules/{rule_id}")


@pytest.fixture(params=["postgresql", "sqlite"])
async def points(request: pytest.FixtureRequest, empty_db: Callable[[str], Awaitable[str]], tmp_path: Path
                 ) -> AsyncIterator[httpx.AsyncClient]:
    """The points service, prepared, on each database."""
    async with running("points", request.param, empty_db, tmp_path) as client:
        await prepare(client, "points")
        yield client


async def test_accepted_spellings_still_work(points: httpx.AsyncClient) -> None:
    program = await points.put("/v1/program", json={**PROGRAM, "points_per_unit": 1, "expiry_days": "365",
                                                    "time_zone": "America/New_York"})
    assert program.status_code == 200, program.text
    assert Decimal(program.json()["points_per_unit"]) == 1 and program.json()["time_zone"] == "America/New_York"
    for purchase_id, total, moment in (("ok-1", "12.30", "2026-11-20T10:15:00Z"),
                                       ("ok-2", 12, "2026-11-20T11:15:00+01:00"),
                                       ("ok-3", "12", "2026-11-20t10:15:00.123456-05:30")):
        answer = await points.post("/v1/purchases", json={**PURCHASE, "purchase_id": purchase_id, "total": total,
                                                          "occurred_at": moment, "lines": None})
        assert answer.status_code == 201, answer.text
        assert answer.json()["points_earned"] == 12
    lines = [{"sku": "A", "quantity": "2", "unit_price": 5}, {"sku": "B", "quantity": 1, "unit_price": "0.50"}]
    answer = await points.post("/v1/purchases", json={**PURCHASE, "purchase_id": "ok-4", "total": "10.50",
                                                      "lines": lines})
    assert answer.status_code == 201, answer.text
    refund = await points.post("/v1/purchases/ok-1/refunds", json={
        "refund_id": "ok-rf", "amount": "0.30", "occurred_at": "2026-11-20T11:15:00+01:00"})  # the same instant
    assert refund.status_code == 201, refund.text
    adjusted = await points.post("/v1/members/M1/adjustments", json={
        "adjustment_id": "ok-a", "points": "-2", "reason": "  Goodwill  "})
    assert adjusted.status_code == 201 and adjusted.json()["reason"] == "Goodwill", adjusted.text
    moved = await points.post("/v1/members/M1/transfers", json={"transfer_id": "ok-t", "to_member_id": "M2",
                                                                "points": 1, "reason": "Household pool"})
    assert moved.status_code == 201, moved.text
    rule = await points.post("/v1/earning-rules", json={**MULTIPLIER, "rule_id": "ok-r", "factor": 2,
                                                         "valid_from": "2026-12-01T00:00:00+01:00"})
    assert rule.status_code == 201, rule.text
    assert datetime.fromisoformat(rule.json()["valid_from"]) == datetime(2026, 11, 30, 23, tzinfo=UTC)
    member = await points.put("/v1/members/M1", json={"birth_date": "1990-12-10", "name": "Ada Byron"})
    assert member.status_code == 200 and member.json()["birth_date"] == "1990-12-10", member.text
    assert (await points.get("/v1/members/M1/ledger", params={"limit": "2"})).status_code == 200


async def test_a_batch_item_with_text_a_database_cannot_store_fails_alone(points: httpx.AsyncClient) -> None:
    now = utcnow().isoformat()
    batch = {"purchases": [{**PURCHASE, "purchase_id": "b-1", "channel": "p\x00s", "occurred_at": now},
                           {**PURCHASE, "purchase_id": "b-2", "occurred_at": now}]}
    answer = await send(points, "POST", "/v1/purchases/batch", batch)
    assert answer.status_code == 200, answer.text
    first, second = answer.json()["results"]
    assert first["status"] == 422 and ["body", "purchases", 0, "channel"] in [
        e["loc"] for e in first["body"]["errors"]]
    assert second["status"] == 201
