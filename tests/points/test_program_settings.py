"""The program's time zone (weekdays and birthday months are read in it, never in the offset a purchase was sent
with) and its cap on one purchase's points (no valid program overflows a column)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from shared.messaging import events
from tests.points.builders import enroll, program, purchase
from tests.points.ledger_checks import assert_balanced
from tests.support import deliver


async def set_program(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    answer = await client.put("/v1/program", json=program(**fields))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def earned(client: httpx.AsyncClient, purchase_id: str, member_id: str, occurred_at: str,
                 total: str = "10.00") -> int:
    answer = await client.post("/v1/purchases", json=purchase(purchase_id, member_id, total, occurred_at=occurred_at))
    assert answer.status_code == 201, answer.text
    points: int = answer.json()["points_earned"]
    return points


async def test_the_time_zone_is_a_program_setting_of_iana_names(client: httpx.AsyncClient) -> None:
    shown = (await client.get("/v1/program")).json()
    assert shown["time_zone"] == "UTC" and shown["max_points_per_purchase"] == 1_000_000_000
    assert (await set_program(client, time_zone="Pacific/Kiritimati"))["time_zone"] == "Pacific/Kiritimati"
    assert (await client.get("/v1/program")).json()["time_zone"] == "Pacific/Kiritimati"
    for name in ("Mars/Olympus", "localtime", "+14:00", "pacific/kiritimati", "../../etc/passwd"):
        answer = await client.put("/v1/program", json=program(time_zone=name))
        assert answer.status_code == 422, (name, answer.text)
        assert answer.json()["errors"][0]["loc"] == ["body", "time_zone"]
    assert (await client.get("/v1/program")).json()["time_zone"] == "Pacific/Kiritimati"


async def test_the_same_instant_earns_the_same_promotion_whatever_offset_it_was_sent_with(
    client: httpx.AsyncClient,
) -> None:
    """Friday 20 November 2026 10:15 UTC is Saturday 00:15 on Kiritimati (+14:00), and Thursday 22:15 at -12:00:
    read in the offsets sent, a Saturday promotion would apply to one and not the other."""
    await set_program(client, time_zone="Pacific/Kiritimati")
    rule = {"rule_id": "saturday-x3", "kind": "multiplier", "factor": "3", "match": {"channels": ["pos"]},
            "days_of_week": [6]}
    assert (await client.post("/v1/earning-rules", json=rule)).status_code == 201
    await enroll(client, "K-1")
    sent = ["2026-11-21T00:15:00+14:00", "2026-11-19T22:15:00-12:00", "2026-11-20T10:15:00Z",
            "2026-11-20T15:45:00+05:30"]
    assert [await earned(client, f"k-{i}", "K-1", moment) for i, moment in enumerate(sent)] == [30, 30, 30, 30]
    # 09:59 UTC is still Friday 23:59 on Kiritimati, whatever the offset
    assert await earned(client, "k-9", "K-1", "2026-11-20T23:59:00+14:00") == 10
    assert await earned(client, "k-10", "K-1", "2026-11-19T21:59:00-12:00") == 10


async def test_a_purchase_near_midnight_lands_on_the_programs_local_weekday(client: httpx.AsyncClient) -> None:
    """Saturday 21 November 2026 03:30 UTC is Friday 22:30 in New York: a Friday promotion applies, a
    Saturday one does not, as UTC's weekday would have it."""
    await set_program(client, time_zone="America/New_York")
    for rule_id, day in (("friday-x2", 5), ("saturday-x5", 6)):
        rule = {"rule_id": rule_id, "kind": "multiplier", "factor": "2" if day == 5 else "5",
                "match": {"channels": ["pos"]}, "days_of_week": [day]}
        assert (await client.post("/v1/earning-rules", json=rule)).status_code == 201
    await enroll(client, "N-1")
    assert await earned(client, "n-1", "N-1", "2026-11-21T03:30:00Z") == 20  # Friday in New York
    assert await earned(client, "n-2", "N-1", "2026-11-21T05:30:00Z") == 50  # 00:30 on Saturday there


async def test_the_birthday_month_is_the_programs(client: httpx.AsyncClient) -> None:
    await set_program(client, time_zone="America/New_York")
    bonus = {"rule_id": "bday", "kind": "bonus", "points": 25, "trigger": "birthday_month"}
    assert (await client.post("/v1/earning-rules", json=bonus)).status_code == 201
    await enroll(client, "B-1", birth_date="1990-12-10")
    assert await earned(client, "b-1", "B-1", "2026-12-01T03:00:00Z") == 10  # 30 November, 22:00 in New York
    assert await earned(client, "b-2", "B-1", "2026-12-01T06:00:00Z") == 35  # 1 December there
    assert await earned(client, "b-3", "B-1", "2026-12-02T06:00:00Z") == 10  # once a year


async def test_the_largest_purchase_the_api_allows_earns_the_cap_not_an_error(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The largest total, rate, factors, tier multiplier and bonus together would earn about 10**30 points;
    the cap keeps them (and every sum of them: balance, lifetime figures) far inside the 64-bit columns."""
    await set_program(client, points_per_unit="99999999.9999")
    for i in range(3):
        rule = {"rule_id": f"x100-{i}", "kind": "multiplier", "factor": "100", "match": {"channels": ["pos"]}}
        assert (await client.post("/v1/earning-rules", json=rule)).status_code == 201
    bonus = {"rule_id": "welcome", "kind": "bonus", "points": 1_000_000, "trigger": "first_purchase"}
    assert (await client.post("/v1/earning-rules", json=bonus)).status_code == 201
    await enroll(client, "H-1")
    await deliver(app, events.TierChanged(member_id="H-1", from_tier="bronze", to_tier="top", rank=1,
                                          ladder=["bronze", "top"], earn_multiplier="9999.9999", reason="upgrade",
                                          at="2026-11-20T09:00:00Z"))
    total = "999999999999.99"  # Amount: at most 12 digits before the point (and USD has 2 after it)
    for cap in (1_000_000_000, 10**12):
        await set_program(client, points_per_unit="99999999.9999", max_points_per_purchase=cap)
        answer = await client.post("/v1/purchases", json=purchase(f"h-{cap}", "H-1", total))
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["points_earned"] == cap == sum(item["points"] for item in body["breakdown"])
        assert body["breakdown"][0] == {"rule_id": "base", "points": cap}
        assert all(item["points"] == 0 for item in body["breakdown"][1:])
    balance = (await client.get("/v1/members/H-1/balance")).json()
    assert balance["available"] == balance["lifetime_earned"] == 10**9 + 10**12
    refund = await client.post(f"/v1/purchases/h-{10**12}/refunds", json={
        "refund_id": "h-rf", "amount": total, "occurred_at": "2026-11-20T12:00:00Z"})
    assert refund.status_code == 201 and refund.json()["points_reversed"] == 10**12, refund.text
    assert (await client.get("/v1/members/H-1/ledger")).status_code == 200
    await assert_balanced(app, "H-1")


async def test_the_cap_is_bounded(client: httpx.AsyncClient) -> None:
    for cap in (0, -1, 10**12 + 1, True, "1e9", 1e9):
        answer = await client.put("/v1/program", json=program(max_points_per_purchase=cap))
        assert answer.status_code == 422, (cap, answer.text)
        assert answer.json()["errors"][0]["loc"] == ["body", "max_points_per_purchase"]
    assert (await set_program(client, max_points_per_purchase=10**12))["max_points_per_purchase"] == 10**12
