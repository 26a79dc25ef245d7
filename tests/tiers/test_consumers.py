"""Events from points, handed to the tiers handlers through the inbox as Kafka would, against PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.clock import utcnow
from shared.messaging.events import MemberUpdated
from tests.support import deliver, outbox_events
from tests.tiers.builders import (
    LADDER,
    enrolled,
    points_earned,
    points_reversed,
    program,
    purchase,
    refund,
    tier,
)


@pytest.fixture(autouse=True)
async def ladder(client: httpx.AsyncClient) -> None:
    assert (await client.put("/v1/tiers", json=program())).status_code == 200


async def standing(client: httpx.AsyncClient, member_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/members/{member_id}/tier")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def moves(client: httpx.AsyncClient, member_id: str) -> list[tuple[str | None, str, str]]:
    items = (await client.get(f"/v1/members/{member_id}/tier/history")).json()["items"]
    return [(h["from_tier"], h["to_tier"], h["reason"]) for h in reversed(items)]


async def changes(app: FastAPI, member_id: str) -> list[dict[str, Any]]:
    return [e["data"] for e in await outbox_events(app, "tier.changed") if e["subject"] == member_id]


# --- members ----------------------------------------------------------------------------------------


async def test_enrolment_places_the_member_at_the_lowest_tier(client: httpx.AsyncClient, app: FastAPI) -> None:
    assert await deliver(app, enrolled("C-1")) == "handled"
    assert (await standing(client, "C-1"))["tier_id"] == "bronze"
    assert await moves(client, "C-1") == [(None, "bronze", "enrolled")]
    (changed,) = await changes(app, "C-1")
    assert changed["from_tier"] is None and changed["to_tier"] == "bronze" and changed["reason"] == "enrolled"
    assert changed["rank"] == 0 and changed["ladder"] == LADDER and changed["earn_multiplier"] == "1"


async def test_member_updates_change_no_tier(client: httpx.AsyncClient, app: FastAPI) -> None:
    await deliver(app, enrolled("C-1"))
    await deliver(app, enrolled("C-1"))  # told again under another event id
    await deliver(app, MemberUpdated(member_id="C-1", status="suspended", enrolled_at=utcnow()))
    assert await moves(client, "C-1") == [(None, "bronze", "enrolled")]
    assert len(await changes(app, "C-1")) == 1


async def test_an_update_of_a_member_not_known_yet_makes_them_known(client: httpx.AsyncClient, app: FastAPI) -> None:
    await deliver(app, MemberUpdated(member_id="C-1", status="active", enrolled_at=utcnow()))
    assert await moves(client, "C-1") == [(None, "bronze", "enrolled")]


async def test_a_first_purchase_before_the_enrolment_makes_the_member_known(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await deliver(app, purchase("p-1", "C-1", "750.00"))
    await deliver(app, enrolled("C-1"))
    assert (await standing(client, "C-1"))["tier_id"] == "silver"
    assert await moves(client, "C-1") == [(None, "bronze", "enrolled"), ("bronze", "silver", "upgrade")]


# --- purchases --------------------------------------------------------------------------------------


async def test_purchases_upgrade_at_the_threshold(client: httpx.AsyncClient, app: FastAPI) -> None:
    await deliver(app, enrolled("C-1"))
    await deliver(app, purchase("p-1", "C-1", "499.99"))
    assert (await standing(client, "C-1"))["tier_id"] == "bronze"
    await deliver(app, purchase("p-2", "C-1", "0.01"))
    got = await standing(client, "C-1")
    assert got["tier_id"] == "silver" and got["qualifying_value"] == "500.00"
    assert got["next_tier"] == {"tier_id": "gold", "threshold": "1000.00", "remaining": "500.00"}
    upgrade = (await changes(app, "C-1"))[-1]
    assert (upgrade["from_tier"], upgrade["to_tier"], upgrade["reason"]) == ("bronze", "silver", "upgrade")
    assert upgrade["rank"] == 1 and upgrade["ladder"] == LADDER and upgrade["earn_multiplier"] == "1.5"

    await deliver(app, purchase("p-3", "C-1", "600.00"))
    gold = (await changes(app, "C-1"))[-1]
    assert (gold["from_tier"], gold["to_tier"], gold["rank"], gold["earn_multiplier"]) == ("silver", "gold", 2, "2")


async def test_a_purchase_counts_once_however_often_it_is_told(client: httpx.AsyncClient, app: FastAPI) -> None:
    event = purchase("p-1", "C-1", "300.00")
    assert await deliver(app, event, event_id="evt-1") == "handled"
    assert await deliver(app, event, event_id="evt-1") == "duplicate"
    assert await deliver(app, event) == "handled"  # the same purchase under another event id
    got = await standing(client, "C-1")
    assert got["qualifying_value"] == "300.00" and got["tier_id"] == "bronze"


async def test_refunds_lower_the_value(client: httpx.AsyncClient, app: FastAPI) -> None:
    await deliver(app, purchase("p-1", "C-1", "400.00"))
    await deliver(app, purchase("p-2", "C-1", "200.00"))
    assert (await standing(client, "C-1"))["tier_id"] == "silver"
    await deliver(app, refund("r-1", "p-1", "C-1", "150.00"))
    await deliver(app, refund("r-1", "p-1", "C-1", "150.00"))  # told again under another event id
    got = await standing(client, "C-1")
    assert got["qualifying_value"] == "450.00"
    assert got["tier_id"] == "silver", "kept until retained_until"
    await deliver(app, refund("r-2", "p-2", "C-1", "500.00"))  # more than p-2: p-2 counts 0, p-1 still 250
    assert (await standing(client, "C-1"))["qualifying_value"] == "250.00"


async def test_purchases_outside_the_window_do_not_count(client: httpx.AsyncClient, app: FastAPI) -> None:
    await deliver(app, purchase("p-old", "C-1", "5000.00", days_ago=400))
    await deliver(app, purchase("p-new", "C-1", "100.00", days_ago=364))
    got = await standing(client, "C-1")
    assert got["tier_id"] == "bronze" and got["qualifying_value"] == "100.00"
    assert await moves(client, "C-1") == [(None, "bronze", "enrolled")]


async def test_a_refund_of_an_unknown_purchase_changes_nothing(client: httpx.AsyncClient, app: FastAPI) -> None:
    await deliver(app, purchase("p-1", "C-1", "100.00"))
    await deliver(app, refund("r-1", "p-before-tiers", "C-1", "80.00"))
    assert (await standing(client, "C-1"))["qualifying_value"] == "100.00"


# --- the points basis -------------------------------------------------------------------------------


async def test_points_basis_counts_the_purchases_points_net_of_reversals(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await client.put("/v1/tiers", json=program(
        basis="points", tiers=[tier("blue", "0"), tier("silver", "1000", "1.5")]))
    await deliver(app, purchase("p-1", "C-1", "10.00", points=900))
    await deliver(app, points_earned("p-1", "C-1", 900))
    assert (await standing(client, "C-1"))["qualifying_value"] == "900"
    await deliver(app, purchase("p-2", "C-1", "10.00", points=150))
    await deliver(app, points_earned("p-2", "C-1", 150))
    assert (await standing(client, "C-1"))["tier_id"] == "silver"

    # the reversal may come (on loyalty.points) before or after the refund (on loyalty.purchases)
    await deliver(app, points_reversed("r-1", "p-2", "C-1", 100))
    assert (await standing(client, "C-1"))["qualifying_value"] == "950"
    await deliver(app, refund("r-1", "p-2", "C-1", "5.00", points=100))
    got = await standing(client, "C-1")
    assert got["qualifying_value"] == "950" and got["tier_id"] == "silver"


async def test_points_without_a_purchase_of_the_member_do_not_count(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.put("/v1/tiers", json=program(basis="points", tiers=[tier("blue", "0"), tier("silver", "1000")]))
    await deliver(app, enrolled("referrer"))
    await deliver(app, purchase("p-friend", "friend", "10.00", points=10))
    await deliver(app, points_earned("p-friend", "referrer", 5000))  # a referral bonus names the friend's purchase
    await deliver(app, points_earned(None, "referrer", 5000))  # an enrolment bonus
    assert (await standing(client, "referrer"))["qualifying_value"] == "0"
    assert (await standing(client, "friend"))["qualifying_value"] == "10"


async def test_a_referral_bonus_for_the_members_own_purchase_and_its_reversal_count_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The referee's referral bonus names its own purchase (kind bonus): it must not become that purchase's
    points, nor its reversal the refund's."""
    await client.put("/v1/tiers", json=program(basis="points", tiers=[tier("blue", "0"), tier("silver", "1000")]))
    await deliver(app, purchase("p-1", "friend", "10.00", points=10))
    await deliver(app, points_earned("p-1", "friend", 10))
    await deliver(app, points_earned("p-1", "friend", 5000).model_copy(update={"kind": "bonus"}))
    assert (await standing(client, "friend"))["qualifying_value"] == "10"
    await deliver(app, refund("r-1", "p-1", "friend", "10.00", points=10))
    await deliver(app, points_reversed("r-1", "p-1", "friend", 10))
    await deliver(app, points_reversed("r-1", "p-1", "friend", 5000).model_copy(update={"kind": "bonus"}))
    assert (await standing(client, "friend"))["qualifying_value"] == "0"


async def test_reversed_points_before_the_purchase_count_when_it_arrives(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await client.put("/v1/tiers", json=program(basis="points", tiers=[tier("blue", "0"), tier("silver", "1000")]))
    await deliver(app, points_reversed("r-1", "p-1", "C-1", 300))
    await deliver(app, points_earned("p-1", "C-1", 1200))
    await deliver(app, purchase("p-1", "C-1", "12.00", points=1200))
    got = await standing(client, "C-1")
    assert got["qualifying_value"] == "900" and got["tier_id"] == "blue"


async def test_a_program_change_during_deliveries_leaves_nobody_on_the_old_ladder(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    new_ladder = program(tiers=[tier("blue", "0"), tier("green", "250", "1.25")])

    async def shop(member_id: str) -> None:
        for i in range(3):
            assert await deliver(app, purchase(f"{member_id}-p{i}", member_id, "100.00")) == "handled"

    members = [f"C-{i}" for i in range(12)]
    change = asyncio.create_task(client.put("/v1/tiers", json=new_ladder))
    await asyncio.gather(*[shop(m) for m in members])
    assert (await change).status_code == 200
    for member_id in members:
        got = await standing(client, member_id)
        assert got["qualifying_value"] == "300.00"
        assert got["tier_id"] == "green", (member_id, got)


async def test_a_batch_of_purchases_moves_members_as_the_events_one_at_a_time_would(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The consumer hands a batch of purchases to one use case; a member whose two purchases each cross a
    threshold still moves bronze → silver → gold, as on a rebuild that replays them one by one."""
    from services.tiers.service.purchases import record_purchases

    await deliver(app, enrolled("C-1"))
    await deliver(app, enrolled("C-2"))
    batch = [purchase("p-1", "C-1", "600.00"), purchase("p-2", "C-2", "50.00"), purchase("p-3", "C-1", "500.00"),
             purchase("p-1", "C-1", "600.00")]  # told twice: counted once
    async with app.state.db.transaction() as session:
        await record_purchases(session, batch)
    assert await moves(client, "C-1") == [(None, "bronze", "enrolled"), ("bronze", "silver", "upgrade"),
                                          ("silver", "gold", "upgrade")]
    assert await moves(client, "C-2") == [(None, "bronze", "enrolled")]
    assert (await standing(client, "C-1"))["tier_id"] == "gold"
