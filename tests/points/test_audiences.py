"""Rules aimed at an audience (tiers, value classes, lifecycles, enrolment age) through the API: the win-back
and VIP campaigns of the examples, bonuses for new members only, quotes that agree, and bodies refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.messaging import events
from tests.points.builders import buy, enroll, now_purchase, purchase
from tests.points.ledger_checks import assert_balanced
from tests.points.test_identifiers import segment
from tests.support import deliver

WIN_BACK = {"rule_id": "win-back", "kind": "multiplier", "factor": "3", "audience": {"lifecycles": ["lapsed"]}}
VIP_WEEKEND = {"rule_id": "vip-weekend", "kind": "multiplier", "factor": "2", "days_of_week": [6, 7],
               "audience": {"value_classes": ["A"]}}
SATURDAY, MONDAY = "2026-11-21T10:00:00Z", "2026-11-23T10:00:00Z"


def tier(member_id: str, to_tier: str) -> events.TierChanged:
    return events.TierChanged(member_id=member_id, from_tier=None, to_tier=to_tier, rank=2, earn_multiplier="1",
                              reason="upgrade", at="2026-11-20T10:00:00Z")


async def create(client: httpx.AsyncClient, rule: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post("/v1/earning-rules", json=rule)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.mark.parametrize(("audience", "field"), [
    ({}, "audience"),
    ({"value_classes": ["E"]}, "value_classes"),
    ({"lifecycles": ["gone"]}, "lifecycles"),
    ({"enrolled_within_days": 0}, "enrolled_within_days"),
    ({"enrolled_within_days": "1_000"}, "enrolled_within_days"),
    ({"tiers": [""]}, "tiers"),
    ({"segments": ["A"]}, "segments"),
])
async def test_a_bad_audience_is_422_naming_the_field(client: httpx.AsyncClient, audience: dict[str, Any],
                                                      field: str) -> None:
    answer = await client.post("/v1/earning-rules", json={**WIN_BACK, "audience": audience})
    assert answer.status_code == 422, answer.text
    assert any(field in [str(p) for p in err["loc"]] for err in answer.json()["errors"]), answer.json()
    assert (await client.get("/v1/earning-rules/win-back")).status_code == 404


async def test_a_multiplier_needs_a_match_or_an_audience(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/earning-rules", json={"rule_id": "all", "kind": "multiplier", "factor": "2"})
    assert answer.status_code == 422 and "match, an audience" in answer.json()["detail"], answer.text
    await create(client, WIN_BACK)
    unaimed = await client.patch("/v1/earning-rules/win-back", json={"audience": None})
    assert unaimed.status_code == 422, unaimed.text
    assert (await client.get("/v1/earning-rules/win-back")).json()["audience"] == {"lifecycles": ["lapsed"]}


async def test_win_back_triples_for_lapsed_members_only(client: httpx.AsyncClient, app: FastAPI) -> None:
    assert (await create(client, WIN_BACK))["audience"] == {"lifecycles": ["lapsed"]}
    for member_id in ("lapsed", "active", "unknown"):
        await enroll(client, member_id)
    assert await deliver(app, segment("lapsed", "B", "lapsed"), source="tiers") == "handled"
    assert await deliver(app, segment("active", "B", "active"), source="tiers") == "handled"
    body = now_purchase("p-1", "lapsed", "10.00")
    quote = (await client.post("/v1/quotes", json={k: v for k, v in body.items() if k != "purchase_id"})).json()
    bought = await buy(client, "p-1", "lapsed", "10.00")
    assert bought["points_earned"] == quote["points_earned"] == 30
    assert bought["breakdown"] == quote["breakdown"] == [{"rule_id": "base", "points": 10},
                                                         {"rule_id": "win-back", "points": 20}]
    assert (await buy(client, "p-2", "active", "10.00"))["points_earned"] == 10
    assert (await buy(client, "p-3", "unknown", "10.00"))["points_earned"] == 10  # not segmented yet: in no list
    # Won back: the next purchase earns as everyone's does.
    assert await deliver(app, segment("lapsed", "B", "won_back"), source="tiers") == "handled"
    assert (await buy(client, "p-4", "lapsed", "10.00"))["points_earned"] == 10
    for member_id in ("lapsed", "active", "unknown"):
        await assert_balanced(app, member_id)


async def test_vip_weekend_doubles_class_a_on_saturdays_in_the_programs_zone(
        client: httpx.AsyncClient, app: FastAPI) -> None:
    await create(client, VIP_WEEKEND)
    await enroll(client, "vip")
    await enroll(client, "regular")
    assert await deliver(app, segment("vip", "A", "active"), source="tiers") == "handled"
    assert await deliver(app, segment("regular", "C", "active"), source="tiers") == "handled"
    earned = {}
    for purchase_id, member_id, moment in (("s-1", "vip", SATURDAY), ("s-2", "regular", SATURDAY),
                                           ("m-1", "vip", MONDAY)):
        answer = await client.post("/v1/purchases", json=purchase(purchase_id, member_id, "20.00", occurred_at=moment))
        assert answer.status_code == 201, answer.text
        earned[purchase_id] = answer.json()["points_earned"]
    assert earned == {"s-1": 40, "s-2": 20, "m-1": 20}


async def test_tier_audiences_and_bonuses_for_new_members(
        client: httpx.AsyncClient, app: FastAPI, travel: Callable[[timedelta], None]) -> None:
    await create(client, {"rule_id": "gold-min-spend", "kind": "bonus", "points": 50, "trigger": "min_spend",
                          "min_spend": "5.00", "audience": {"tiers": ["gold"]}})
    await create(client, {"rule_id": "new-member", "kind": "bonus", "points": 7, "trigger": "min_spend",
                          "min_spend": "1.00", "audience": {"enrolled_within_days": 7}})
    await create(client, {"rule_id": "gold-welcome", "kind": "bonus", "points": 1000, "trigger": "enrollment",
                          "audience": {"tiers": ["gold"]}})
    await enroll(client, "G-1")
    await enroll(client, "S-1")
    assert (await client.get("/v1/members/G-1/balance")).json()["available"] == 0  # no tier at enrolment
    assert await deliver(app, tier("G-1", "gold"), source="tiers") == "handled"
    assert await deliver(app, tier("S-1", "silver"), source="tiers") == "handled"
    gold = await buy(client, "g-1", "G-1", "10.00")
    assert gold["breakdown"] == [{"rule_id": "base", "points": 10}, {"rule_id": "gold-min-spend", "points": 50},
                                 {"rule_id": "new-member", "points": 7}]
    assert (await buy(client, "s-1", "S-1", "10.00"))["points_earned"] == 17
    travel(timedelta(days=8))
    assert (await buy(client, "s-2", "S-1", "10.00"))["points_earned"] == 10  # enrolled 8 days before
    await assert_balanced(app, "G-1")
    await assert_balanced(app, "S-1")


async def test_an_audience_changed_applies_to_the_next_purchase(client: httpx.AsyncClient, app: FastAPI) -> None:
    await create(client, WIN_BACK)
    await enroll(client, "C-1")
    assert await deliver(app, segment("C-1", "D", "at_risk"), source="tiers") == "handled"
    assert (await buy(client, "p-1", "C-1", "10.00"))["points_earned"] == 10
    patched = await client.patch("/v1/earning-rules/win-back", json={"audience": {"lifecycles": ["lapsed", "at_risk"]}})
    assert patched.status_code == 200 and patched.json()["audience"]["lifecycles"] == ["lapsed", "at_risk"]
    assert (await buy(client, "p-2", "C-1", "10.00"))["points_earned"] == 30
