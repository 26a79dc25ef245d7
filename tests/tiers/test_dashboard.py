"""The dashboard against PostgreSQL: its projections fed through the inbox as Kafka would, the page's
figures, its key and its assets. The browser test is tests/system/test_dashboard.py."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from ops import rebuild
from services.tiers.domain import figures
from services.tiers.service import projections
from shared.clock import utcnow
from shared.http.auth import KeyRecord, hash_key, write_keys_file
from shared.messaging import events
from tests.support import ADMIN_KEY, deliver, service_client
from tests.tiers.builders import balance_event, enrolled, points_earned, program
from tests.tiers.pages import read_tables

THIS_WEEK = figures.week_label(figures.week_of(utcnow()))


def basic(password: str, user: str = "operator") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def redemption(kind: type[events.RedemptionEvent], redemption_id: str, member_id: str, reward_id: str,
               quantity: int = 1, cost: int = 100) -> events.RedemptionEvent:
    return kind(member_id=member_id, redemption_id=redemption_id, reward_id=reward_id, quantity=quantity,
                points_cost=cost * quantity)


async def page(client: httpx.AsyncClient) -> dict[str, list[list[str]]]:
    response = await client.get("/dashboard")
    assert response.status_code == 200, response.text
    return read_tables(response.text)


@pytest.fixture(autouse=True)
async def ladder(client: httpx.AsyncClient) -> None:
    assert (await client.put("/v1/tiers", json=program())).status_code == 200


# --- projections ---------------------------------------------------------------------------------------


async def test_points_issued_spent_and_expired_add_up_per_week_once_per_event(
    client: httpx.AsyncClient, app: FastAPI,
) -> None:
    await deliver(app, enrolled("C-1"))
    assert await deliver(app, points_earned(None, "C-1", 250), event_id="e-1") == "handled"
    assert await deliver(app, points_earned(None, "C-1", 250), event_id="e-1") == "duplicate"
    await deliver(app, points_earned(None, "C-1", 40))
    await deliver(app, balance_event(events.PointsSpent, "C-1", 190).model_copy(update={"points": 100}))
    await deliver(app, balance_event(events.PointsExpired, "C-1", 180))
    await deliver(app, balance_event(events.PointsAdjusted, "C-1", 185))  # not a kind shown
    await deliver(app, balance_event(events.PointsHeld, "C-1", 150, held=35))  # nor holds and their release
    await deliver(app, balance_event(events.PointsReleased, "C-1", 155, held=30))
    await deliver(app, balance_event(events.PointsSpent, "C-1", 155, hold_id="h-1", redemption_id=None)
                  .model_copy(update={"points": 30}))  # a capture is spent like a redemption

    weeks = (await page(client))["table-points"]
    assert len(weeks) == projections.WEEKS and weeks[-1] == [THIS_WEEK, "290", "130", "10"]
    assert all(row[1:] == ["0", "0", "0"] for row in weeks[:-1])


async def test_top_rewards_count_confirmed_redemptions_and_not_cancelled_ones(
    client: httpx.AsyncClient, app: FastAPI,
) -> None:
    await deliver(app, redemption(events.RedemptionConfirmed, "r-1", "C-1", "cup", quantity=2))
    await deliver(app, redemption(events.RedemptionConfirmed, "r-2", "C-2", "cup"))
    await deliver(app, redemption(events.RedemptionConfirmed, "r-3", "C-2", "tote", cost=250))
    await deliver(app, redemption(events.RedemptionConfirmed, "r-4", "C-3", "mug", cost=50))
    await deliver(app, redemption(events.RedemptionCancelled, "r-2", "C-2", "cup"))
    # a cancellation seen before its confirmation (a rebuild's merge) stays a cancellation
    await deliver(app, redemption(events.RedemptionCancelled, "r-5", "C-3", "mug", cost=50))
    await deliver(app, redemption(events.RedemptionConfirmed, "r-5", "C-3", "mug", cost=50))

    assert (await page(client))["table-rewards"] == [["cup", "2", "200"], ["tote", "1", "250"], ["mug", "1", "50"]]


async def test_the_rebuild_replays_the_dashboard_projections_too() -> None:
    for event_type in (events.PointsEarned, events.PointsSpent, events.PointsExpired, events.PointsHeld,
                       events.PointsReleased, events.RedemptionConfirmed, events.RedemptionCancelled):
        assert event_type.TYPE in rebuild.HANDLERS


# --- the page ------------------------------------------------------------------------------------------


async def test_the_page_shows_members_by_tier_and_the_liability(client: httpx.AsyncClient, app: FastAPI) -> None:
    for member_id in ("C-1", "C-2"):
        await deliver(app, enrolled(member_id))
    await deliver(app, balance_event(events.PointsAdjusted, "C-1", 700, pending=50))
    await deliver(app, balance_event(events.PointsHeld, "C-1", 600, pending=50, held=100))  # still owed
    response = await client.get("/dashboard", headers=basic(ADMIN_KEY))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    tables = read_tables(response.text)
    assert tables["table-tiers"] == [["Bronze", "2"], ["Silver", "0"], ["Gold", "0"]]
    assert tables["table-pareto"] == []  # no segmentation run yet
    assert 'id="figure-liability">750<' in response.text and 'id="figure-members">2<' in response.text


async def test_the_page_loads_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard")
    sources = re.findall(r'(?:src|href)="([^"]*)"', response.text)
    assert sources == ["dashboard/static/chart.umd.min.js", "dashboard/static/dashboard.js"]
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    for source in sources:
        asset = await client.get(f"/{source}", headers={"Authorization": ""})
        assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript"), source
    chart = await client.get("/dashboard/static/chart.umd.min.js")
    assert b"Chart.js v4.5.1" in chart.content[:200]


async def test_only_the_named_assets_are_served(client: httpx.AsyncClient) -> None:
    for name in ("chart.js-LICENSE.md", "..%2Fdashboard.py", "nothing.js"):
        response = await client.get(f"/dashboard/static/{name}")
        assert response.status_code == 404, name
        assert response.headers["content-type"] == "application/problem+json"


# --- the key -------------------------------------------------------------------------------------------


@pytest.fixture
async def keyed_client(tmp_path: Path, empty_db: object) -> AsyncIterator[httpx.AsyncClient]:
    """tiers with a keys file holding a members:read key ``reader-key``."""
    keys = tmp_path / "keys.json"
    write_keys_file(keys, [KeyRecord(name="reader", key_sha256=hash_key("reader-key"), scopes=["members:read"])])
    async with service_client("tiers", api_keys_file=keys) as (_, client):
        yield client


@pytest.mark.parametrize("headers", [
    {}, basic("wrong-key"), {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic !!not-base64"},
    basic(""), {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
])
async def test_without_an_admin_key_the_page_asks_for_one(keyed_client: httpx.AsyncClient,
                                                          headers: dict[str, str]) -> None:
    response = await keyed_client.get("/dashboard", headers={"Authorization": "", **headers})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Basic realm="loyalty dashboard"')
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/unauthorized"
    assert "<table" not in response.text


async def test_a_key_without_the_admin_scope_is_forbidden(keyed_client: httpx.AsyncClient) -> None:
    for headers in (basic("reader-key"), {"Authorization": "Bearer reader-key"}):
        response = await keyed_client.get("/dashboard", headers=headers)
        assert response.status_code == 403 and response.json()["type"] == "/problems/forbidden"


async def test_any_user_name_with_the_admin_key_as_password_or_bearer_opens_it(
    keyed_client: httpx.AsyncClient,
) -> None:
    for headers in (basic(ADMIN_KEY), basic(ADMIN_KEY, user=""), basic(ADMIN_KEY, user="ops"),
                    {"Authorization": f"Bearer {ADMIN_KEY}"}, {"Authorization": "", "X-API-Key": ADMIN_KEY}):
        assert (await keyed_client.get("/dashboard", headers=headers)).status_code == 200, headers


async def test_the_dashboard_is_in_the_openapi_under_analytics(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/dashboard"]["get"]
    assert operation["tags"] == ["analytics"] and operation["summary"]
    assert {"401", "403"} <= set(operation["responses"])
    assert "analytics" in {tag["name"] for tag in spec["tags"]}
    assert not any(path.startswith("/dashboard/static") for path in spec["paths"])


async def test_a_guesser_at_the_password_prompt_is_braked_while_the_admin_key_still_opens_it(
    keyed_client: httpx.AsyncClient,
) -> None:
    answers = [(await keyed_client.get("/dashboard", headers=basic(f"guess-{n}"))) for n in range(25)]
    assert [a.status_code for a in answers[:20]] == [401] * 20
    assert {a.status_code for a in answers[20:]} == {429}
    assert answers[-1].json()["type"] == "/problems/rate-limited" and int(answers[-1].headers["retry-after"]) > 0
    assert (await keyed_client.get("/dashboard", headers=basic(ADMIN_KEY))).status_code == 200
